"""The `attimo` command: run everything, or one part, or the demo shoppers.

`api` and `dataflows` never import each other, so the dataflow and the
benchmark tools are started as their own modules (`python -m …`) rather than
imported here.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from pathlib import Path
from urllib.parse import urlparse

import orjson
import redis

from api.supervisor import Part, PartStartError, Supervisor, environment, python_part, redis_server_part
from state.logs import configure_logging
from state.settings import Settings

log = logging.getLogger("attimo")

CREDENTIALS_FILE = "dev-credentials.json"


def _redis_answers(url: str) -> bool:
    """Whether a Redis at `url` answers PING now (a loading or absent one does not)."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _dev_credentials(path: Path) -> dict[str, str]:
    """A write key and admin token that stay the same across `attimo run`s, readable by the owner only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        credentials = {"ATTIMO_WRITE_KEY": "wk_" + secrets.token_hex(12),
                       "ATTIMO_ADMIN_TOKEN": "adm_" + secrets.token_hex(16)}
        # Created 0600 from the start: no moment where another user could read the token.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(orjson.dumps(credentials))
    path.chmod(0o600)
    stored: dict[str, str] = orjson.loads(path.read_bytes())
    return stored


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
            f"  API docs       {settings.api_url}/docs\n"
            f"  gateway        {settings.gateway_url}/v1/stream?key={settings.write_key}\n"
            f"  write key      {settings.write_key}\n"
            f"  admin token    {token}\n"
            f"  profile        curl -H 'Authorization: Bearer {curl_token}' "
            f"{settings.api_url}/v1/contacts/<id>\n"
            f"Ctrl-C stops everything.\n")


def cmd_run(args: argparse.Namespace) -> None:
    """Start Redis (if none answers), the gateway, the dataflow and the API, and keep them running."""
    overrides: dict[str, str] = {}
    data_dir = Path(os.environ.get("ATTIMO_DATA_DIR", "var"))
    credentials = data_dir / CREDENTIALS_FILE
    for name, value in _dev_credentials(credentials).items():
        if name not in os.environ:
            overrides[name] = value
    os.environ.update(overrides)
    settings = Settings()
    parts: list[Part] = []
    if not _redis_answers(settings.redis_url):
        port = urlparse(settings.redis_url).port or 6379
        log.info("no Redis answers; starting a private one",
                 extra={"url": settings.redis_url, "appendfsync": settings.redis_appendfsync})
        parts.append(redis_server_part(port, data_dir / "redis", settings.redis_appendfsync,
                                       ready=lambda: _redis_answers(settings.redis_url)))
    parts += [python_part("gateway", "api.cli", "gateway"),
              python_part("dataflow", "dataflows"),
              python_part("api", "api.cli", "api")]
    if args.demo_shoppers:
        parts.append(python_part("demo", "benchmarks.demo", "--shoppers", str(args.demo_shoppers)))
    token_source = "file" if "ATTIMO_ADMIN_TOKEN" in overrides else "environment"
    text = banner(settings, credentials, token_source, sys.stdout.isatty())
    try:
        Supervisor(parts, environment({})).run(on_started=lambda: print(text, flush=True))
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


def _exec_module(module: str, argv: list[str]) -> None:
    os.execv(sys.executable, [sys.executable, "-m", module, *argv])


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `attimo` console script."""
    parser = argparse.ArgumentParser(prog="attimo", description="Real-time marketing automation.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="everything: Redis if needed, gateway, dataflow, API")
    run.add_argument("--demo-shoppers", type=int, default=0,
                     help="also run N simulated shoppers against the demo shop")
    run.set_defaults(func=cmd_run)
    sub.add_parser("gateway", help="the websocket gateway alone").set_defaults(func=cmd_gateway)
    sub.add_parser("api", help="the HTTP API alone").set_defaults(func=cmd_api)
    for name, module, text in (("dataflow", "dataflows", "the Bytewax dataflow alone"),
                               ("demo", "benchmarks.demo", "simulated shoppers over websockets"),
                               ("bench", "benchmarks", "the benchmark suite")):
        sub.add_parser(name, help=text, add_help=False).set_defaults(module=module)
    args, rest = parser.parse_known_args(argv)
    configure_logging(args.command)
    if hasattr(args, "module"):
        _exec_module(args.module, rest)
    args.func(args)


if __name__ == "__main__":
    main()
