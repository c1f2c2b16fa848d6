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
import time
from pathlib import Path
from urllib.parse import urlparse

import orjson
import redis

from api.supervisor import Part, Supervisor, environment, python_part, redis_server_part
from state.logs import configure_logging
from state.settings import Settings

log = logging.getLogger("attimo")


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _dev_credentials(data_dir: Path) -> dict[str, str]:
    """A write key and admin token that stay the same across `attimo run`s."""
    path = data_dir / "dev-credentials.json"
    if path.exists():
        stored: dict[str, str] = orjson.loads(path.read_bytes())
        return stored
    data_dir.mkdir(parents=True, exist_ok=True)
    credentials = {"ATTIMO_WRITE_KEY": "wk_" + secrets.token_hex(12),
                   "ATTIMO_ADMIN_TOKEN": "adm_" + secrets.token_hex(16)}
    path.write_bytes(orjson.dumps(credentials))
    path.chmod(0o600)
    return credentials


def cmd_run(args: argparse.Namespace) -> None:
    """Start Redis (if needed), the gateway, the dataflow and the API."""
    overrides: dict[str, str] = {}
    data_dir = Path(os.environ.get("ATTIMO_DATA_DIR", "var"))
    for name, value in _dev_credentials(data_dir).items():
        if name not in os.environ:
            overrides[name] = value
    os.environ.update(overrides)
    settings = Settings()
    parts: list[Part] = []
    if not _redis_answers(settings.redis_url):
        port = urlparse(settings.redis_url).port or 6379
        log.info("no Redis answers; starting a private one", extra={"url": settings.redis_url})
        redis_part = redis_server_part(port, data_dir / "redis")
        redis_part.start(environment({}))
        deadline = time.monotonic() + 10
        while not _redis_answers(settings.redis_url):
            if time.monotonic() > deadline:
                sys.exit(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        parts.append(redis_part)
    parts += [python_part("gateway", "api.cli", "gateway"),
              python_part("dataflow", "dataflows"),
              python_part("api", "api.cli", "api")]
    if args.demo_shoppers:
        parts.append(python_part("demo", "benchmarks.demo", "--shoppers", str(args.demo_shoppers)))
    banner = (f"\nAttimo is running.\n"
              f"  demo shop      {settings.api_url}/\n"
              f"  API docs       {settings.api_url}/docs\n"
              f"  gateway        {settings.gateway_url}/v1/stream?key={settings.write_key}\n"
              f"  write key      {settings.write_key}\n"
              f"  admin token    {settings.admin_token}\n"
              f"  profile        curl -H 'Authorization: Bearer {settings.admin_token}' "
              f"{settings.api_url}/v1/contacts/<id>\n"
              f"Ctrl-C stops everything.\n")
    print(banner, flush=True)
    supervisor = Supervisor([p for p in parts if p.name != "redis"], environment({}))
    try:
        supervisor.run()
    finally:
        for part in parts:
            if part.name == "redis" and part.popen is not None:
                part.popen.terminate()
                part.popen.wait(timeout=10)


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
