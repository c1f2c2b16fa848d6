"""Every `attimo` command finds the dev credentials `attimo run` keeps, unless the environment gives them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.cli import use_dev_credentials
from state import dev_credentials
from state.settings import Settings

WRITE_KEY, ADMIN_TOKEN = dev_credentials.VARIABLES


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Path]:
    """This process's environment as a fresh shell: a data directory, no credentials; restored afterwards."""
    saved = dict(os.environ)
    for name in dev_credentials.VARIABLES:
        os.environ.pop(name, None)
    os.environ["ATTIMO_DATA_DIR"] = str(tmp_path / "var")
    try:
        yield tmp_path / "var"
    finally:
        os.environ.clear()
        os.environ.update(saved)


class TestAttimoRun:
    """`attimo run` generates the credentials once and runs with them."""

    def test_first_run_keeps_new_credentials_and_uses_them(self, shell: Path) -> None:
        assert use_dev_credentials(create=True) == sorted(dev_credentials.VARIABLES)
        stored = dev_credentials.load(shell)
        assert stored is not None
        assert (Settings().write_key, Settings().admin_token) == (stored.write_key, stored.admin_token)

    def test_given_both_by_the_environment_it_keeps_no_file(self, shell: Path) -> None:
        """Nothing generated that nobody uses: a later command could only pick up the wrong key."""
        os.environ |= {WRITE_KEY: "wk_env", ADMIN_TOKEN: "adm_env"}
        assert use_dev_credentials(create=True) == []
        assert dev_credentials.load(shell) is None
        assert Settings().write_key == "wk_env"


class TestEveryOtherCommand:
    """`demo`, `bench`, `api`, `gateway` and `dataflow` read what `attimo run` made, and make nothing."""

    def test_finds_the_credentials_attimo_run_made(self, shell: Path) -> None:
        made = dev_credentials.create(shell)
        assert use_dev_credentials(create=False) == sorted(dev_credentials.VARIABLES)
        settings = Settings()
        assert (settings.write_key, settings.admin_token) == (made.write_key, made.admin_token)

    def test_a_variable_in_the_environment_wins_over_the_file(self, shell: Path) -> None:
        made = dev_credentials.create(shell)
        os.environ[WRITE_KEY] = "wk_env"
        assert use_dev_credentials(create=False) == [ADMIN_TOKEN]
        settings = Settings()
        assert (settings.write_key, settings.admin_token) == ("wk_env", made.admin_token)

    def test_where_attimo_run_never_ran_nothing_is_set_or_made(self, shell: Path) -> None:
        assert use_dev_credentials(create=False) == []
        assert WRITE_KEY not in os.environ
        assert not dev_credentials.path(shell).exists()

    def test_a_damaged_file_stops_the_command_with_its_path(self, shell: Path) -> None:
        shell.mkdir(parents=True)
        dev_credentials.path(shell).write_text("not json")
        with pytest.raises(SystemExit, match=re.escape(str(dev_credentials.path(shell)))):
            use_dev_credentials(create=False)
