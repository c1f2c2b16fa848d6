"""`python -m benchmarks.dispatch [--short|--full]` — dispatcher deliveries/s to a local webhook receiver.

A private redis-server, a real receiver on 127.0.0.1 (`benchmarks.webhook_receiver`,
answering 200 at once, in this process) and real `attimo dispatcher`
processes. Two measures:

- throughput: a backlog of actions of many contacts appended to the outbox
  through `state.outbox.queue_action`, drained by 1 and then 2 dispatcher
  processes: deliveries/s from the first append to the last delivery, and
  CPU seconds per 1 000 deliveries of each process;
- latency: actions appended at a fixed rate (half the 1-process throughput),
  append → received at the receiver, p50 / p95 / p99 / max.

Before a figure counts, every run is checked: each action answered 2xx
exactly once, every signature verified with the reference `standardwebhooks`,
every outbox entry acked. Results go to `benchmarks/results/dispatcher-<date>.json`
and the `## dispatcher run` section of `RESULTS.md` (the other sections stay
as they are).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

import msgspec
import redis
from standardwebhooks import Webhook

from api.dispatcher.records import EndpointSecret, WebhookEndpoint, encode
from api.dispatcher.signing import new_secret
from api.processes import (
    attimo_command,
    attimo_environment,
    redis_answers,
    redis_server_command,
    start_process,
    stop_process,
)
from benchmarks import report
from benchmarks.progress import note
from benchmarks.stack import REPO, cpu_seconds, free_port, wait_until
from benchmarks.stats import percentiles
from benchmarks.webhook_receiver import WebhookReceiver
from state import keys
from state.actions import Action, ActionContact
from state.outbox import queue_action
from state.profile import CartLine

NAME: Final = report.DISPATCHER
SHARDS: Final = 4
# Start-up only: a shorter lease shares the shards between two dispatchers sooner; deliveries are the same.
SETTINGS: Final = {"ATTIMO_OUTBOX_SHARDS": str(SHARDS), "ATTIMO_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
                   "ATTIMO_DISPATCHER_LEASE_S": "8", "ATTIMO_WEBHOOK_TIMEOUT_S": "5"}
MODES: Final = {"short": {"actions": 6_000, "contacts": 1_000, "latency_s": 5.0},
                "full": {"actions": 40_000, "contacts": 5_000, "latency_s": 20.0}}


def make_action(n: int, contacts: int, created_at: float) -> Action:
    """A webhook action of a typical size: a contact with traits, a cart line, a coupon."""
    contact = f"contact-{n % contacts}"
    return Action(id=f"bench-{n}", kind="webhook", channel="crm",
                  contact=ActionContact(contact_id=contact, user_id=contact, email=f"{contact}@example.com",
                                        traits={"first_name": "Ada", "plan": "gold"}),
                  workflow_id="abandoned-cart", workflow_version=1, step_id="reminder-1", created_at=created_at,
                  endpoint="shop", cart=[CartLine(product_id="sku-1", name="Trail shoe", price=59.0)],
                  payload={"coupon": "COMEBACK10", "n": n})


@contextmanager
def private_redis(directory: Path) -> Iterator[str]:
    """A redis-server without persistence on a free port; its URL."""
    port = free_port()
    process = start_process(redis_server_command(port, directory, appendonly=False), log=directory / "redis.log")
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_until(lambda: redis_answers(url), 10, "redis-server")
        yield url
    finally:
        stop_process(process)


def code_info() -> dict[str, str]:
    """The commit measured, and whether the working tree had changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False).stdout

    dirty = git("status", "--porcelain", "--", "state", "dataflows", "api").strip()
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "subject": git("log", "-1", "--format=%s").strip(),
            "uncommitted_changes": str(len(dirty.splitlines())) if dirty else "0"}


def append(client: redis.Redis, actions: list[Action], batch: int = 500) -> None:
    """Append actions to the outbox exactly as the dataflow's sink does, pipelined."""
    for start in range(0, len(actions), batch):
        with client.pipeline(transaction=False) as pipe:
            for each in actions[start:start + batch]:
                queue_action(pipe, each, SHARDS, 3600)
            pipe.execute()


def pending(client: redis.Redis) -> int:
    """Outbox entries read but not yet acked."""
    return sum(int(client.xpending(keys.outbox(s), "dispatchers")["pending"]) for s in range(SHARDS))


def check(client: redis.Redis, receiver: WebhookReceiver, ids: set[str], secret: str,
          earlier: set[str]) -> dict[str, Any]:
    """Each of `ids` answered 2xx exactly once, no other id came, every signature verified, every entry acked.

    The receiver serves a whole run: the ids of earlier phases (`earlier`) were checked by those.
    """
    hook = Webhook(secret)
    bad_signatures = 0
    delivered: Counter[str] = Counter()
    seen: set[str] = set()
    for attempt in receiver.attempts():
        if attempt.webhook_id in earlier:
            continue
        seen.add(attempt.webhook_id)
        delivered[attempt.webhook_id] += attempt.ok
        try:
            hook.verify(attempt.body, attempt.headers)
        except Exception:
            bad_signatures += 1
    missing = len(ids - {i for i, n in delivered.items() if n})
    twice = sum(1 for n in delivered.values() if n > 1)
    extra = len(seen - ids)
    left = pending(client)
    return {"actions": len(ids), "missing": missing, "delivered_twice": twice, "unexpected": extra,
            "bad_signatures": bad_signatures, "pending": left,
            "correct": missing == 0 and twice == 0 and extra == 0 and bad_signatures == 0 and left == 0}


class Run:
    """One private Redis + receiver + endpoint, with dispatcher processes started on demand."""

    def __init__(self, url: str, receiver: WebhookReceiver, workdir: Path, stack: ExitStack) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url)
        stack.callback(self.client.close)
        self.receiver = receiver
        self.workdir = workdir
        self.stack = stack
        self.secret = new_secret()
        self.checked: set[str] = set()
        endpoint = WebhookEndpoint(id="shop", url=receiver.url, created_at=time.time(), updated_at=time.time(),
                                   secrets=[EndpointSecret(secret=self.secret, created_at=time.time())])
        self.client.hset(keys.webhook_endpoints(), "shop", encode(endpoint))

    def dispatchers(self, count: int) -> list[int]:
        """Start `count` dispatcher processes and wait until they share every shard; their pids."""
        env = attimo_environment({**SETTINGS, "ATTIMO_REDIS_URL": self.url,
                                  "ATTIMO_DATA_DIR": str(self.workdir)})
        pids = []
        for n in range(count):
            process = start_process(attimo_command("api.cli", "dispatcher"), env,
                                    log=self.workdir / f"dispatcher-{count}-{n}.log", cwd=REPO)
            self.stack.callback(stop_process, process)
            pids.append(process.pid)

        def shared() -> bool:
            owners = self.client.mget([keys.dispatcher_lease(s) for s in range(SHARDS)])
            return None not in owners and len(set(owners)) == count

        wait_until(shared, 60, f"{count} dispatcher(s) to share the outbox shards")
        return pids


def throughput(run: Run, processes: int, actions: int, contacts: int, offset: int) -> dict[str, Any]:
    """Deliveries/s draining a backlog appended at once, and CPU per delivery."""
    pids = run.dispatchers(processes)
    batch = [make_action(offset + n, contacts, time.time()) for n in range(actions)]
    ids = {a.id for a in batch}
    before = {pid: cpu_seconds(pid) for pid in pids}
    redis_pid = int(run.client.info("server")["process_id"])
    redis_before = cpu_seconds(redis_pid)
    started = time.monotonic()
    append(run.client, batch)
    appended_s = time.monotonic() - started
    wait_until(lambda: ids <= set(run.receiver.delivered()), 600, "every delivery")
    elapsed = time.monotonic() - started
    cpu = {f"dispatcher {n}": round(cpu_seconds(pid) - before[pid], 3) for n, pid in enumerate(pids)}
    cpu["redis"] = round(cpu_seconds(redis_pid) - redis_before, 3)
    wait_until(lambda: pending(run.client) == 0, 30, "every ack")
    result = check(run.client, run.receiver, ids, run.secret, run.checked)
    run.checked |= ids
    dispatcher_cpu = sum(v for k, v in cpu.items() if k.startswith("dispatcher"))
    return {"processes": processes, "actions": actions, "contacts": contacts, "append_s": round(appended_s, 3),
            "elapsed_s": round(elapsed, 3), "deliveries_per_s": round(actions / elapsed, 1), "cpu_s": cpu,
            "dispatcher_cpu_ms_per_delivery": round(1000 * dispatcher_cpu / actions, 3), "check": result}


def latency(run: Run, rate: float, seconds: float, contacts: int, offset: int) -> dict[str, Any]:
    """Append → received at a fixed rate (open loop), with the dispatchers already running."""
    total = int(rate * seconds)
    sent: dict[str, float] = {}
    origin = time.monotonic()

    def produce() -> None:
        for n in range(total):
            due = origin + n / rate
            time.sleep(max(0.0, due - time.monotonic()))
            each = make_action(offset + n, contacts, time.time())
            sent[each.id] = time.time()
            append(run.client, [each])

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join()
    ids = set(sent)
    wait_until(lambda: ids <= set(run.receiver.delivered()), 120, "every delivery")
    received = {a.webhook_id: a.received_at for a in run.receiver.attempts() if a.ok and a.webhook_id in ids}
    wait_until(lambda: pending(run.client) == 0, 30, "every ack")
    result = check(run.client, run.receiver, ids, run.secret, run.checked)
    run.checked |= ids
    return {"rate_per_s": round(rate, 1), "actions": total,
            "append_to_received_ms": percentiles([(received[i] - sent[i]) * 1000 for i in ids]), "check": result}


def measure(mode: str, workdir: Path) -> dict[str, Any]:
    """Both measures on fresh stacks; the figures as `report.write` stores them."""
    size = MODES[mode]
    actions, contacts = int(size["actions"]), int(size["contacts"])
    started = time.monotonic()
    figures: dict[str, Any] = {"mode": mode, "shards": SHARDS, "settings": SETTINGS, "throughput": []}
    for processes in (1, 2):
        with ExitStack() as stack:
            url = stack.enter_context(private_redis(workdir / f"redis-{processes}"))
            receiver = stack.enter_context(WebhookReceiver())
            run = Run(url, receiver, workdir, stack)
            note(f"dispatcher: {actions} actions, {processes} process(es)")
            figures["throughput"].append(throughput(run, processes, actions, contacts, 0))
            if processes == 1:
                rate = figures["throughput"][0]["deliveries_per_s"] / 2
                note(f"dispatcher: latency at {rate:.0f} actions/s")
                figures["latency"] = latency(run, rate, float(size["latency_s"]), contacts, actions)
    checks = [r["check"]["correct"] for r in figures["throughput"]] + [figures["latency"]["check"]["correct"]]
    figures["correctness"] = {"correct": all(checks)}
    figures["duration_s"] = round(time.monotonic() - started, 1)
    return figures


def render_dispatcher(doc: dict[str, Any]) -> str:
    """The `## dispatcher run` section of RESULTS.md."""
    f, m = doc["figures"], doc["machine"]
    fmt = report._fmt
    lines = [
        f"## {NAME} run — {doc['date']}\n",
        f"- machine: {m['nproc']} cores, {m['cpu']}, {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, Redis {m['redis']}; receiver and load in one process on the same cores",
        f"- command: `{doc['command']}`",
        f"- code: {report._code(f.get('code'))}",
        f"- duration: {fmt(f.get('duration_s'))} s; {f['shards']} outbox shards; settings "
        + ", ".join(f"`{k}={v}`" for k, v in f["settings"].items()),
        f"- **correct: {str(doc['correct']).lower()}** (each action answered 2xx exactly once, every signature "
        "verified with `standardwebhooks`, every outbox entry acked)",
        "\n### Deliveries per second (a backlog appended at once, drained to a receiver answering 200 at once)\n",
        "| dispatcher processes | actions | contacts | deliveries/s | dispatcher CPU ms per delivery | "
        "CPU s (each process) | correct |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in f["throughput"]:
        cpu = "; ".join(f"{k} {fmt(v)}" for k, v in r["cpu_s"].items())
        lines.append(f"| {r['processes']} | {fmt(r['actions'])} | {fmt(r['contacts'])} | "
                     f"**{fmt(r['deliveries_per_s'])}** | {fmt(r['dispatcher_cpu_ms_per_delivery'])} | {cpu} | "
                     f"{str(r['check']['correct']).lower()} |")
    lat = f["latency"]
    points = lat["append_to_received_ms"]
    lines.append(f"\nAt {fmt(lat['rate_per_s'])} actions/s (half the 1-process rate, open loop, "
                 f"{fmt(lat['actions'])} actions): appended to the outbox → received, p50 / p95 / p99 / max "
                 + " / ".join(fmt(points.get(k)) for k in ("p50", "p95", "p99", "max")) + " ms.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dispatch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="bigger backlog and a longer latency run")
    parser.add_argument("--out", type=Path, default=report.HERE, help="where results/ and RESULTS.md go")
    args = parser.parse_args(argv)
    mode = "full" if args.full else "short"
    with tempfile.TemporaryDirectory(prefix="attimo-dispatch-") as workdir:
        figures = measure(mode, Path(workdir))
    figures["code"] = code_info()
    path = report.write(figures, NAME, "python -m benchmarks.dispatch" + (" --full" if args.full else ""),
                        args.out)
    note(f"wrote {path}; correct: {str(report.all_correct(figures)).lower()}")
    note(msgspec.json.encode({r["processes"]: r["deliveries_per_s"] for r in figures["throughput"]}).decode())
    return 0 if report.all_correct(figures) else 1


if __name__ == "__main__":
    sys.exit(main())
