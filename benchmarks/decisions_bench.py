"""Decisions under load: one API process, 50 connections, while 5,000 events/s are ingested.

`python -m benchmarks.decisions_bench` starts a private stack (Redis,
gateway, dataflow, API) from a commit (`--commit`, default HEAD: others edit
the working tree while it runs), writes the documents the dataflow would
have written — products' neighbour documents and trending in the products
stage's format (`state.recommendations`), and decision documents for
`--contacts` contacts, a share of them signed-in users — and then, for each
HTTP server asked for (`--servers`):

1. checks that answers are right before measuring anything: sampled ids
   (anonymous, signed-in with `sig`) answer exactly what composing their
   documents gives, and a user's id without `sig` is refused;
2. ingests `--rate` events/s over websockets (the benchmark's shopper
   model) and, after a warm-up, runs `wrk` (one thread, 50 connections)
   over the contacts' ids for `--seconds`: requests/s, latency, CPU per
   request of the API and of Redis, the ingest rate achieved, and the load
   average before and after (the machine is shared: figures are comparable
   only at similar load; `--quiet-load` waits for a quieter moment first).

Then push latency: fresh visitors' first page view → `decision` frame on
their socket (the latency phase's probes) while the same ingest runs.

Servers: `uvicorn` is `attimo api` as shipped (hardened httptools protocol,
`api.decisions_fast` in front of FastAPI); `granian` serves the same ASGI
app from Rust's HTTP stack (no head limits of `api.http_server`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import redis

from api.decisions.answer import public_decisions
from api.decisions.identity import sign_user_id
from api.decisions.read import DecisionRead, DocView
from benchmarks import report
from benchmarks.decisions_load import run_paths
from benchmarks.decisions_report import NAME
from benchmarks.load_plan import build_plan
from benchmarks.probes import Probes
from benchmarks.progress import note
from benchmarks.shoppers import ShopperModel
from benchmarks.stack import CODE, CpuMeter, Stack, _listens, cpu_seconds, wait_until
from benchmarks.stats import percentiles
from benchmarks.workflows import export_commit
from benchmarks.ws_client import LoadRunner
from state import keys
from state.decisions import DecisionDoc, OnArrival, PopupContent, PopupDecision, ProductCard, Seeds, encode_doc
from state.recommendations import encode_card, encode_neighbours, encode_trending, read_ids
from state.settings import Settings

SECRET = "bench-identity-secret"
SERVERS = ("uvicorn", "granian")


def granian_app() -> Any:
    """The API as `attimo api` builds it, for granian (`--factory`): settings from ATTIMO_* variables."""
    from api.app import create_app
    from api.decisions_fast import DecisionsFastPath
    from state.settings import Settings

    return DecisionsFastPath(create_app(Settings()))


# ---- the documents the dataflow would have written ------------------------------------

def seed(client: redis.Redis, contacts: int, products: int, signed_share: float, seed_n: int = 7) -> list[str]:
    """Write products' documents, trending and `contacts` decision documents; the request paths (with `sig`)."""
    rng = random.Random(seed_n)
    ids = [f"bp{i}" for i in range(products)]
    cards = {p: encode_card(ProductCard(id=p, name=f"Product {p}", price=round(rng.uniform(5, 200), 2),
                                        category=f"c{i % 20}", image=f"https://shop.example/img/{p}.jpg",
                                        url=f"https://shop.example/p/{p}")) for i, p in enumerate(ids)}
    pipe = client.pipeline(transaction=False)
    for p in ids:
        scored = [(q, 1.0 / (r + 1)) for r, q in enumerate(rng.sample(ids, 10))]
        viewed = [(q, 1.0 / (r + 1)) for r, q in enumerate(rng.sample(ids, 10))]
        pipe.set(keys.product_neighbours(p), encode_neighbours(p, scored, viewed, rng.sample(ids, 10), cards, 1.0))
    pipe.set(keys.trending(), encode_trending([(q, 1.0 / (r + 1)) for r, q in enumerate(ids[:50])], cards, 1.0))
    pipe.execute()
    popup = PopupDecision(campaign="welcome", variant="a", layout="modal", triggers=[OnArrival()],
                          content=PopupContent(title="Welcome", text="10% off your first order", cta_label="Shop",
                                               cta_url="https://shop.example/", coupon="HELLO10"))
    paths = []
    for n in range(contacts):
        user = rng.random() < signed_share
        contact = f"bu{n}" if user else f"ba{n}"
        doc = DecisionDoc(contact_id=contact, user_id=contact if user else None,
                          popups=[popup] if n % 3 == 0 else [],
                          seeds=Seeds(viewed=rng.sample(ids, 5), cart=rng.sample(ids, n % 3),
                                      bought=rng.sample(ids, n % 2)),
                          public={"temperature": "warm"} if n % 5 == 0 else {})
        pipe.set(keys.decision_doc(contact), encode_doc(doc))
        paths.append(f"/v1/decisions/{contact}" + (f"?sig={sign_user_id(SECRET, contact)}&" if user else "?"))
        if n % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return paths


def expected_answer(client: redis.Redis, contact: str) -> bytes:
    """What composing the contact's stored documents gives (read here with plain GETs)."""
    raw = client.get(keys.decision_doc(contact))
    doc = msgspec.json.decode(raw, type=DocView) if raw else None
    wanted = read_ids(doc.seeds) if doc is not None else []
    found = client.mget([keys.product_neighbours(p) for p in wanted]) if wanted else []
    neighbours = {p: v for p, v in zip(wanted, found, strict=True) if isinstance(v, bytes)}
    trending = client.get(keys.trending())
    return public_decisions(DecisionRead(doc, neighbours, trending if isinstance(trending, bytes) else None))


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status), bytes(answer.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def check_answers(stack: Stack, client: redis.Redis, paths: list[str], sample: int = 200) -> dict[str, Any]:
    """Sampled answers equal their documents' composition; a user without `sig` is refused (401)."""
    wrong: list[str] = []
    rng = random.Random(11)
    for path in rng.sample(paths, min(sample, len(paths))):
        contact = path.split("/")[-1].split("?")[0]
        status, body = http_get(f"{stack.api_url}{path}key={stack.write_key}")
        if status != 200 or body != expected_answer(client, contact):
            wrong.append(f"{path} → {status}")
    users = [p for p in paths if "sig=" in p][:20]
    refused = [http_get(f"{stack.api_url}{p.split('?')[0]}?key={stack.write_key}")[0] for p in users]
    unsigned_refused = all(status == 401 for status in refused)
    return {"correct": not wrong and unsigned_refused, "sampled": min(sample, len(paths)), "wrong": wrong[:5],
            "users_without_sig_refused": unsigned_refused}


# ---- measuring -------------------------------------------------------------------------

def wait_quiet(limit: float, wait_s: float) -> float:
    """Wait (up to `wait_s`) for the 1-minute load average to drop under `limit`; the load seen."""
    deadline = time.monotonic() + wait_s
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        time.sleep(5)
    return round(os.getloadavg()[0], 2)


def start_api(stack: Stack, server: str) -> None:
    """The API process under `server`."""
    if server == "uvicorn":
        stack.start_api()
        return
    argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
            "--port", str(stack.api_port), "--loop", "uvloop", "--workers", "1", "--runtime-threads", "1",
            "--no-ws", "--log-level", "warning", "--factory", "benchmarks.decisions_bench:granian_app"]
    stack._spawn("api", argv, stack.env())
    wait_until(lambda: _listens(stack.api_port), 30, "granian to listen")


def api_cpu(stack: Stack, workers: list[int]) -> float:
    """CPU seconds the API process (and granian's workers) used so far."""
    return stack.cpu().get("api", 0.0) + sum(cpu_seconds(pid) for pid in workers)


def redis_usec(client: redis.Redis) -> float:
    """Microseconds Redis spent in commands so far (INFO commandstats)."""
    stats: dict[str, dict[str, Any]] = client.info("commandstats")
    return float(sum(v.get("usec", 0) for v in stats.values()))


def under_ingest(stack: Stack, rate: int, seconds: float, work: Any, seed_n: int) -> tuple[Any, dict[str, Any]]:
    """Run `work()` (blocking, in a thread) while `rate` events/s are ingested; its result and the ingest's."""
    warmup = 2.0
    events = int(rate * (seconds + warmup + 1))
    model = ShopperModel(seed_n, prefix=f"d{seed_n}")
    plan = build_plan(model, int(events / 11.5) + 20, max(20, min(80, rate // 50)), frame_size=5, max_events=events)
    runner = LoadRunner(stack.gateway_url, stack.api_url, stack.write_key, plan, rate=rate,
                        time_limit_s=seconds * 3 + 20, label=f"ingest {rate:,}/s")

    async def both() -> tuple[Any, Any]:
        load = asyncio.create_task(runner.run())
        await asyncio.sleep(warmup)
        result = await asyncio.to_thread(work)
        return result, await load

    result, load = asyncio.run(both())
    acked = load.events_acked + load.http_events_acked
    return result, {"target_events_per_s": rate, "achieved_events_per_s": round(acked / max(load.elapsed_s, 1e-9)),
                    "events_acked": acked, "reconnects": load.reconnects, "errors": load.errors[:3]}


def measure_server(stack: Stack, server: str, paths: list[str], options: argparse.Namespace) -> dict[str, Any]:
    """Requests/s and latency of one server while ingesting, with CPU per request and the load average."""
    start_api(stack, server)
    client = stack.client()
    check = check_answers(stack, client, paths)
    note(f"{server}: answers {'right' if check['correct'] else 'WRONG'}; waiting for a quiet machine …")
    load_before = wait_quiet(options.quiet_load, options.quiet_wait)
    # granian serves from a worker process it forks: its CPU counts as the API's.
    workers = _children(stack.pids()["api"][0])
    keyed = [f"{p}key={stack.write_key}" for p in paths]
    idle: dict[str, Any] = {}
    if options.idle_seconds > 0:
        note(f"{server}: wrk 50 connections for {options.idle_seconds:g} s, no ingest …")
        api_before, redis_before = api_cpu(stack, workers), redis_usec(client)
        idle = run_paths(stack.api_url, keyed, 50, options.idle_seconds)
        idle_requests = max(1, int(idle.get("requests", 0)))
        # Only decisions requests reach the API here: its CPU per request is the path's own.
        idle["api_cpu_us_per_request"] = round((api_cpu(stack, workers) - api_before) / idle_requests * 1e6, 1)
        idle["redis_us_per_request"] = round((redis_usec(client) - redis_before) / idle_requests, 1)
        idle["load"] = round(os.getloadavg()[0], 2)
    # Counted from here, so the CPU is divided by the requests made meanwhile (the idle run's are not).
    meter = CpuMeter(stack).start()
    workers_before = sum(cpu_seconds(pid) for pid in workers)
    redis_before = redis_usec(client)
    note(f"{server}: wrk 50 connections for {options.seconds:g} s while ingesting {options.rate:,} events/s …")
    http, ingest = under_ingest(stack, options.rate, options.seconds,
                                lambda: run_paths(stack.api_url, keyed, 50, options.seconds), options.seed)
    cpu = meter.stop()
    cpu["api"] = round(cpu.get("api", 0.0) + sum(cpu_seconds(pid) for pid in workers) - workers_before, 3)
    requests = max(1, int(http.get("requests", 0)))
    stack.stop("api")
    return {"server": server, "check": check, "http": http, "idle": idle, "ingest": ingest,
            "api_cpu_us_per_request": round(cpu.get("api", 0.0) / requests * 1e6, 1),
            "redis_us_per_request": round((redis_usec(client) - redis_before) / requests, 1),
            "cpu_s": cpu, "load_before": load_before, "load_after": round(os.getloadavg()[0], 2)}


def cpu_breakdown(redis_url: str, write_key: str, paths: list[str], reads: int = 5_000) -> dict[str, float]:
    """CPU µs per answer in this process: the read, the composition, and the whole fast path without HTTP.

    Where an API process's time goes, apart from the HTTP server: measured on
    the same documents, with the products' documents held as a running API
    holds them. `fast_path_us` is `api.decisions_fast` called as the server
    calls it (scope in, two messages out), read and composition included.
    """
    import uvloop
    from fastapi import FastAPI
    from redis import asyncio as aioredis

    from api.decisions.answer import DecisionService
    from api.decisions.identity import IdentityVerifier
    from api.decisions.reader import DecisionReader
    from api.decisions.redis_wire import PipelinedRedis
    from api.decisions_fast import DecisionsFastPath
    from state.writekeys import WriteKeyCache

    picked = random.Random(5).sample(paths, min(reads, len(paths)))
    contacts = [p.split("/")[-1].split("?")[0] for p in picked]

    async def run() -> dict[str, float]:
        client = PipelinedRedis.from_url(redis_url)
        reader = DecisionReader(client, hold_s=60)
        plain = aioredis.Redis.from_url(redis_url)
        app = FastAPI()
        app.state.decisions = DecisionService(reader, IdentityVerifier([SECRET]))
        app.state.write_keys = WriteKeyCache(plain, ttl_s=600)
        # What the fast path reads its read limit from; off, as in the measured API (benchmarks.stack).
        app.state.settings = Settings(redis_url=redis_url, rate_limit_reads_per_s=0)
        fast = DecisionsFastPath(app)
        try:
            for c in contacts[:200]:
                await reader.read(c)  # the products' documents are held from here on
            started = time.process_time()
            for k in range(0, len(contacts), 50):
                await asyncio.gather(*(reader.read(c) for c in contacts[k:k + 50]))
            read_us = (time.process_time() - started) / len(contacts) * 1e6
            held = [await reader.read(c) for c in contacts[:1000]]
            started = time.process_time()
            for read in held:
                public_decisions(read)
            compose_us = (time.process_time() - started) / len(held) * 1e6
            fast_us = await _fast_path_us(fast, [f"{p}key={write_key}" for p in picked])
            return {"read_us": round(read_us, 1), "compose_and_encode_us": round(compose_us, 1),
                    "fast_path_us": round(fast_us, 1)}
        finally:
            await client.close()
            await plain.aclose()

    result: dict[str, float] = uvloop.run(run())
    return result


async def _fast_path_us(fast: Any, paths: list[str]) -> float:
    """CPU µs per request of the ASGI fast path, 50 requests at a time, the answers checked to be 200s."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    def scope(path: str) -> dict[str, Any]:
        route, _, query = path.partition("?")
        return {"type": "http", "method": "GET", "path": route, "query_string": query.encode(),
                "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"bench")]}

    scopes = [scope(p) for p in paths]
    await asyncio.gather(*(fast(s, receive, send) for s in scopes[:200]))  # the write key is cached
    statuses.clear()
    started = time.process_time()
    for k in range(0, len(scopes), 50):
        await asyncio.gather(*(fast(s, receive, send) for s in scopes[k:k + 50]))
    spent = time.process_time() - started
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"the fast path answered {sorted(set(statuses))}")
    return spent / len(scopes) * 1e6


def _children(pid: int) -> list[int]:
    """The processes `pid` started (granian's workers)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(child) for child in found.split()]


def measure_push(stack: Stack, options: argparse.Namespace) -> dict[str, Any]:
    """Fresh visitors' first event → `decision` frame on their socket, while ingesting."""
    load_before = wait_quiet(options.quiet_load, options.quiet_wait)
    probes = Probes(stack.gateway_url, stack.redis_url, stack.write_key, "dprobe", 20.0)
    result, ingest = under_ingest(stack, options.rate, options.push_seconds,
                                  lambda: asyncio.run(probes.run(options.push_seconds)), options.seed + 1)
    return {"probes": result.sent, "not_pushed": result.not_pushed, "event_to_push_ms": percentiles(result.pushed_ms),
            "event_to_visible_ms": percentiles(result.visible_ms), "ingest": ingest, "load_before": load_before,
            "load_after": round(os.getloadavg()[0], 2)}


def measure(options: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Every measure on one stack; the figures as `report.write` stores them."""
    started = time.monotonic()
    # Every part of the stack inherits this process's environment: the API and the gateway verify `sig`.
    os.environ["ATTIMO_IDENTITY_SECRETS"] = SECRET
    figures: dict[str, Any] = {"options": {k: v for k, v in vars(options).items() if k not in ("out",)},
                               "servers": []}
    with Stack(workdir / "stack") as stack:
        stack.start_redis()
        stack.start_gateway()
        stack.start_dataflow()
        client = stack.client()
        note(f"decisions: writing {options.products:,} products' and {options.contacts:,} contacts' documents …")
        paths = seed(client, options.contacts, options.products, options.signed_share)
        for server in options.servers:
            figures["servers"].append(measure_server(stack, server, paths, options))
        figures["cpu_breakdown"] = cpu_breakdown(stack.redis_url, stack.write_key, paths)
        figures["cpu_breakdown"]["load"] = round(os.getloadavg()[0], 2)
        stack.start_api()
        note(f"push latency: {options.push_seconds:g} s of probes while ingesting {options.rate:,} events/s …")
        figures["push"] = measure_push(stack, options)
    checks = [s["check"]["correct"] and s["http"].get("non_2xx", 1) == 0 for s in figures["servers"]]
    figures["correctness"] = {"correct": bool(checks) and all(checks) and figures["push"]["not_pushed"] == 0}
    figures["duration_s"] = round(time.monotonic() - started, 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decisions_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="wrk duration per server")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="wrk without ingest first (0: skip)")
    parser.add_argument("--push-seconds", type=float, default=10.0, help="push probes duration")
    parser.add_argument("--rate", type=int, default=5_000, help="events/s ingested meanwhile")
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--signed-share", type=float, default=0.2, help="share of contacts that are users")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--quiet-load", type=float, default=1.5, help="load average to wait for")
    parser.add_argument("--quiet-wait", type=float, default=0.0, help="longest wait for it, seconds")
    parser.add_argument("--commit", default="HEAD", help="measure this commit's code (git archive)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=report.HERE, help="where results/ and RESULTS.md go")
    args = parser.parse_args(argv)
    if "granian" in args.servers and shutil.which("granian") is None and not _importable("granian"):
        parser.error("granian is not installed (pip install granian), or choose --servers uvicorn")
    workdir = Path(tempfile.mkdtemp(prefix="attimo-decisions-"))
    try:
        code = export_commit(args.commit, workdir / "code")
        CODE["root"] = workdir / "code"
        figures = measure(args, workdir)
        figures["code"] = code
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    command = "python -m benchmarks.decisions_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    path = report.write(figures, NAME, command.strip(), args.out)
    note(f"wrote {path}; correct: {str(report.all_correct(figures)).lower()}")
    for s in figures["servers"]:
        note(f"{s['server']}: {s['http'].get('requests_per_s')} req/s, p99 {s['http'].get('latency_ms', {}).get('p99')}"
             f" ms, load {s['load_before']} → {s['load_after']}")
    return 0 if report.all_correct(figures) else 1


def _importable(module: str) -> bool:
    try:
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
