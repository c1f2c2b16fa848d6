"""Runs the decisions read script on the lean pipelined connection (`EVALSHA`, loading it once if needed)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final, cast

from redis.exceptions import NoScriptError

from api.decisions.answer import RunScript
from api.decisions.read import SCRIPT
from api.decisions.redis_wire import PipelinedRedis

SCRIPT_SHA: Final = hashlib.sha1(SCRIPT.encode()).hexdigest()


def pipelined_runner(client: PipelinedRedis) -> RunScript:
    """A `RunScript` on `client`: one `EVALSHA` per read (a `SCRIPT LOAD` first after a Redis restart)."""

    async def run(args: list[str]) -> Sequence[object]:
        try:
            reply = await client.call("EVALSHA", SCRIPT_SHA, 0, *args)
        except NoScriptError:
            await client.call("SCRIPT", "LOAD", SCRIPT)
            reply = await client.call("EVALSHA", SCRIPT_SHA, 0, *args)
        return cast("Sequence[object]", reply)

    return run
