"""The dev credentials file: made once, readable by its owner only, never overriding the environment."""

from __future__ import annotations

import stat
from pathlib import Path

import msgspec
import pytest

from state import dev_credentials


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestCreate:
    """`attimo run` generates the credentials the first time and keeps them."""

    def test_first_creation_writes_a_file_only_its_owner_can_read(self, tmp_path: Path) -> None:
        """A new data directory gets a 0600 file with a write key and an admin token."""
        made = dev_credentials.create(tmp_path / "var")
        file = dev_credentials.path(tmp_path / "var")
        assert mode(file) == 0o600
        assert made.write_key.startswith("wk_") and made.admin_token.startswith("adm_")
        assert made.write_key != made.admin_token

    def test_later_runs_keep_the_same_credentials(self, tmp_path: Path) -> None:
        """Restarting `attimo run` does not change the key the shop's pages and scripts already use."""
        assert dev_credentials.create(tmp_path) == dev_credentials.create(tmp_path)

    def test_a_file_left_readable_by_others_is_tightened(self, tmp_path: Path) -> None:
        """A file an older version wrote 0644 becomes 0600 on the next run, content unchanged."""
        made = dev_credentials.create(tmp_path)
        dev_credentials.path(tmp_path).chmod(0o644)
        assert dev_credentials.create(tmp_path) == made
        assert mode(dev_credentials.path(tmp_path)) == 0o600

    def test_the_file_names_the_variables_it_stands_in_for(self, tmp_path: Path) -> None:
        """The JSON keys are the variable names, as the README describes the file."""
        made = dev_credentials.create(tmp_path)
        content = msgspec.json.decode(dev_credentials.path(tmp_path).read_bytes())
        assert content == {"ATTIMO_WRITE_KEY": made.write_key, "ATTIMO_ADMIN_TOKEN": made.admin_token}


class TestLoad:
    """Every other command only reads what `attimo run` made."""

    def test_nothing_to_find_where_attimo_run_never_ran(self, tmp_path: Path) -> None:
        """No file: None, and no file is created by looking."""
        assert dev_credentials.load(tmp_path) is None
        assert not dev_credentials.path(tmp_path).exists()

    def test_reads_what_attimo_run_made(self, tmp_path: Path) -> None:
        made = dev_credentials.create(tmp_path)
        assert dev_credentials.load(tmp_path) == made

    def test_a_file_that_is_not_credentials_is_an_error(self, tmp_path: Path) -> None:
        """A damaged file is reported, not taken for credentials."""
        dev_credentials.path(tmp_path).write_text('{"ATTIMO_WRITE_KEY": 1}')
        with pytest.raises(msgspec.DecodeError):
            dev_credentials.load(tmp_path)


class TestMissingFrom:
    """A variable set in the environment wins over the file."""

    def test_only_the_variables_the_environment_lacks(self) -> None:
        stored = dev_credentials.DevCredentials("wk_file", "adm_file")
        assert dev_credentials.missing_from({}, stored) == {"ATTIMO_WRITE_KEY": "wk_file",
                                                            "ATTIMO_ADMIN_TOKEN": "adm_file"}
        assert dev_credentials.missing_from({"ATTIMO_WRITE_KEY": "wk_env"}, stored) == {
            "ATTIMO_ADMIN_TOKEN": "adm_file"}
        both = {"ATTIMO_WRITE_KEY": "wk_env", "ATTIMO_ADMIN_TOKEN": "adm_env"}
        assert dev_credentials.missing_from(both, stored) == {}
