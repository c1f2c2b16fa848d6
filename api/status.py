"""`attimo status`: is Attimo ready, and what each of its processes uses, in a terminal.

It reads Redis directly, running the very checks of `GET /readyz`
(`api.readiness`), rather than calling the API: the answer is the same, it
needs no API process (a dead API shows as missing from the table instead of
turning the whole report into "unreachable"), and the process table comes
from Redis in any case. Exit code 0 when ready, 1 when not, 2 when Redis
cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Final

import msgspec
import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table

from api.readiness import Readiness, check_readiness
from state.process_stats import ProcessStats
from state.settings import Settings

EXIT_READY: Final = 0
EXIT_NOT_READY: Final = 1
EXIT_UNREACHABLE: Final = 2


def exit_code(readiness: Readiness) -> int:
    """0 ready, 2 when Redis did not answer, else 1."""
    if not readiness.failed:
        return EXIT_READY
    return EXIT_UNREACHABLE if "redis" in readiness.failed else EXIT_NOT_READY


def human_bytes(size: int) -> str:
    """1536 → "1.5 KiB"."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """3725 → "1h 2m"; 42 → "42s"."""
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def checks_table(readiness: Readiness) -> Table:
    """One row per readiness check."""
    table = Table(title=f"Attimo is {readiness.status}", title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check in readiness.checks:
        result = "skipped" if check.skipped else "ok" if check.ok else "FAILED"
        style = "yellow" if check.skipped else "green" if check.ok else "bold red"
        table.add_row(check.name, f"[{style}]{result}[/]", check.detail)
    return table


def processes_table(processes: list[ProcessStats], now: float) -> Table:
    """One row per process that reported in the last 5 s."""
    table = Table(title="Processes", title_justify="left")
    for name, justify in (("part", "left"), ("pid", "right"), ("CPU %", "right"), ("RSS", "right"),
                          ("restarts", "right"), ("uptime", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for p in processes:
        table.add_row(p.part, str(p.pid), f"{p.cpu_percent:.1f}", human_bytes(p.rss_bytes), str(p.restarts),
                      human_duration(now - p.started_at))
    return table


async def gather(settings: Settings) -> Readiness:
    """The readiness checks and the process table, read from Redis."""
    timeout = min(settings.redis_timeout_s, 2.0)
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return await check_readiness(client, shards=settings.stream_shards, max_lag_s=settings.ready_max_lag_s,
                                     require_dispatcher=settings.ready_require_dispatcher, timeout_s=timeout)
    finally:
        await client.aclose()


def render(readiness: Readiness, console: Console, now: float) -> None:
    """Print both tables (the process table only when Redis answered)."""
    console.print(checks_table(readiness))
    if "redis" in readiness.failed:
        console.print("[bold red]Redis cannot be reached[/]: is `attimo run` running, is ATTIMO_REDIS_URL right?")
        return
    if readiness.processes:
        console.print(processes_table(readiness.processes, now))
    else:
        console.print("No process reported in the last 5 s.")


def main(argv: list[str] | None = None) -> int:
    """Print the status; returns the exit code."""
    parser = argparse.ArgumentParser(prog="attimo status", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the report as JSON (for scripts)")
    args = parser.parse_args(argv)
    settings = Settings()
    readiness = asyncio.run(gather(settings))
    if args.json:
        sys.stdout.write(msgspec.json.encode(readiness).decode() + "\n")
    else:
        render(readiness, Console(width=None if sys.stdout.isatty() else 160), time.time())
    return exit_code(readiness)


if __name__ == "__main__":
    sys.exit(main())
