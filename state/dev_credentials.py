"""The dev write key and admin token: generated once by `attimo run`, found by every command.

Someone who starts `attimo run` and then, in another terminal, `attimo demo`
or one part alone should not have to copy secrets from one shell to the
other. `attimo run` keeps the credentials it generates in the data directory,
readable by its owner only, and every entry point reads them from there.
A variable set in the environment always wins over the file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import msgspec

FILE_NAME: Final = "dev-credentials.json"
WRITE_KEY: Final = "ATTIMO_WRITE_KEY"
ADMIN_TOKEN: Final = "ATTIMO_ADMIN_TOKEN"
VARIABLES: Final = (WRITE_KEY, ADMIN_TOKEN)


class DevCredentials(msgspec.Struct, frozen=True, rename={"write_key": WRITE_KEY, "admin_token": ADMIN_TOKEN}):
    """The file's content: each value under the name of the variable it stands in for."""

    write_key: str
    admin_token: str


def path(data_dir: Path) -> Path:
    """Where the dev credentials of the data directory `data_dir` are kept."""
    return data_dir / FILE_NAME


def load(data_dir: Path) -> DevCredentials | None:
    """The dev credentials kept in `data_dir`, or None when `attimo run` has not made any there.

    Raises OSError when the file cannot be read and msgspec.DecodeError when
    it is not a credentials file.
    """
    try:
        data = path(data_dir).read_bytes()
    except FileNotFoundError:
        return None
    return msgspec.json.decode(data, type=DevCredentials)


def create(data_dir: Path) -> DevCredentials:
    """The dev credentials kept in `data_dir`, generated and written there the first time (mode 0600)."""
    file = path(data_dir)
    file.parent.mkdir(parents=True, exist_ok=True)
    credentials = DevCredentials("wk_" + secrets.token_hex(12), "adm_" + secrets.token_hex(16))
    try:
        # Created 0600 from the start: no moment where another user could read the token.
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        file.chmod(0o600)  # also tightens a file an older version left readable
        return msgspec.json.decode(file.read_bytes(), type=DevCredentials)
    with os.fdopen(fd, "wb") as handle:
        handle.write(msgspec.json.encode(credentials))
    return credentials


def missing_from(environ: Mapping[str, str], credentials: DevCredentials) -> dict[str, str]:
    """The variables of `credentials` that `environ` does not set (the environment wins)."""
    values: dict[str, str] = msgspec.to_builtins(credentials)
    return {name: value for name, value in values.items() if name not in environ}
