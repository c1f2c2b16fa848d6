"""The `attimo` command: run everything, or one part, or the demo shoppers.

`api` and `dataflows` never import each other, so the dataflow and the
benchmark tools are started as their own modules (`python -m …`) rather than
imported here.

Every command first finds the dev credentials `attimo run` keeps in the data
directory (`state.dev_credentials`), for the variables the environment does
not set, so that a part or the demo started in another terminal uses the
same write key and admin token as the `attimo run` beside it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import msgspec

from api.processes import attimo_environment, redis_answers
from api.supervisor import Part, PartStartError, Supervisor, python_part, redis_server_part
from state import dev_credentials
from state.logs import configure_logging
from state.process_stats import count_restart, quick_client, reset_restarts
from state.settings import Settings

log = logging.getLogger("attimo")


def use_dev_credentials(create: bool) -> list[str]:
    """Set the dev credentials kept in the data directory as this process's variables, where none is set.

    With `create` (`attimo run`) they are generated and kept the first time
    a credential is not given by the environment. Children started later
    inherit them. Returns the names of the variables taken from the file.
    """
    data_dir = Settings().data_dir
    given = all(name in os.environ for name in dev_credentials.VARIABLES)
    try:
        stored = dev_credentials.create(data_dir) if create and not given else dev_credentials.load(data_dir)
    except (OSError, msgspec.DecodeError) as exc:
        sys.exit(f"cannot read {dev_credentials.path(data_dir)} ({exc}); delete it to have new dev credentials")
    taken = dev_credentials.missing_from(os.environ, stored) if stored is not None else {}
    os.environ.update(taken)
    if taken:
        log.info("dev credentials from file", extra={"path": str(dev_credentials.path(data_dir)),
                                                     "variables": sorted(taken)})
    return sorted(taken)


def banner(settings: Settings, credentials: Path, token_source: str, to_terminal: bool) -> str:
    """What `attimo run` prints once everything has started.

    The admin token is a secret: it is shown only to a person at a terminal,
    never written into a log that stdout is piped to; there the banner says
    where to find it (`token_source` is the credentials file or the variable
    it was set by).
    """
    if to_terminal:
        token, curl_token = settings.admin_token, settings.admin_token
    elif token_source == "file":
        token, curl_token = f"in {credentials} (mode 0600; not printed to a log)", "$ADMIN_TOKEN"
    else:
        token, curl_token = "as set in ATTIMO_ADMIN_TOKEN (not printed to a log)", "$ATTIMO_ADMIN_TOKEN"
    return (f"\nAttimo is running.\n"
            f"  demo shop      {settings.api_url}/\n"
            f"  dashboard      {settings.api_url}/dashboard (log in with the admin token)\n"
            f"  API docs       {settings.api_url}/docs\n"
            f"  gateway        {settings.gateway_url}/v1/stream?key={settings.write_key}\n"
            f"  write key      {settings.write_key}\n"
            f"  admin token    {token}\n"
            f"  profile        curl -H 'Authorization: Bearer {curl_token}' "
            f"{settings.api_url}/v1/contacts/<id>\n"
            f"Ctrl-C stops everything.\n")


def cmd_run(args: argparse.Namespace) -> None:
    """Start Redis (if none answers), the gateway, the dataflow, the API and the dispatcher; keep them running."""
    settings = Settings()
    parts: list[Part] = []
    if not redis_answers(settings.redis_url):
        port = urlparse(settings.redis_url).port or 6379
        log.info("no Redis answers; starting a private one",
                 extra={"url": settings.redis_url, "appendfsync": settings.redis_appendfsync})
        parts.append(redis_server_part(port, settings.data_dir / "redis", settings.redis_appendfsync,
                                       ready=lambda: redis_answers(settings.redis_url)))
    parts += [python_part("gateway", "api.cli", "gateway"),
              python_part("dataflow", "dataflows"),
              python_part("api", "api.cli", "api"),
              python_part("dispatcher", "api.cli", "dispatcher")]
    if args.demo_shoppers:
        parts.append(python_part("demo", "api.cli", "demo", "--shoppers", str(args.demo_shoppers)))
    token_source = "file" if dev_credentials.ADMIN_TOKEN in args.from_file else "environment"
    text = banner(settings, dev_credentials.path(settings.data_dir), token_source, sys.stdout.isatty())
    counts = quick_client(settings.redis_url)  # restarts per part, for `attimo status` and the dashboard

    def started() -> None:
        reset_restarts(counts)
        print(text, flush=True)

    try:
        Supervisor(parts, attimo_environment(),
                   on_restart=lambda name: count_restart(counts, name)).run(on_started=started)
    except PartStartError as exc:
        sys.exit(str(exc))


def cmd_gateway(_: argparse.Namespace) -> None:
    """Run the websocket gateway alone."""
    from api.gateway.server import run_gateway

    run_gateway(Settings())


def cmd_api(_: argparse.Namespace) -> None:
    """Run the HTTP API alone."""
    from api.app import run_api

    run_api(Settings())


def cmd_dispatcher(_: argparse.Namespace) -> None:
    """Run the webhook / e-mail dispatcher alone (several may run: they share the outbox shards)."""
    from api.dispatcher.service import run_dispatcher

    run_dispatcher(Settings())


def cmd_demo(args: argparse.Namespace) -> None:
    """Run simulated shoppers against the running Attimo."""
    from api.demo.shoppers import main as demo_main

    demo_main(args.rest)


def _exec_module(module: str, argv: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, "-m", module, *argv])


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `attimo` console script."""
    parser = argparse.ArgumentParser(prog="attimo", description="Real-time marketing automation.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="everything: Redis if needed, gateway, dataflow, API, dispatcher")
    run.add_argument("--demo-shoppers", type=int, default=0,
                     help="also run N simulated shoppers against the demo shop")
    run.set_defaults(func=cmd_run)
    sub.add_parser("gateway", help="the websocket gateway alone").set_defaults(func=cmd_gateway)
    sub.add_parser("api", help="the HTTP API alone").set_defaults(func=cmd_api)
    sub.add_parser("dispatcher", help="the webhook / e-mail dispatcher alone").set_defaults(func=cmd_dispatcher)
    # These parse their own options (`attimo demo --help` is the demo's help).
    sub.add_parser("demo", help="simulated shoppers over websockets", add_help=False).set_defaults(func=cmd_demo)
    for name, module, text in (("dataflow", "dataflows", "the Bytewax dataflow alone"),
                               ("bench", "benchmarks", "the benchmark suite"),
                               ("replay", "api.replay", "send a file of events (NDJSON, Segment export) to the API"),
                               ("status", "api.status", "readiness checks and a table of the running processes")):
        sub.add_parser(name, help=text, add_help=False).set_defaults(module=module)
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("demo", "dataflow", "bench", "replay", "status"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    configure_logging(args.command)
    args.from_file = use_dev_credentials(create=args.command == "run")
    if hasattr(args, "module"):
        _exec_module(args.module, args.rest)
    args.func(args)


if __name__ == "__main__":
    main()
