"""The benchmark suite: phases, in order, on private stacks, all bounded in count and time.

- `latency`: open-loop browser-like load at fixed rates (small frames, many
  sockets) with probes measuring event sent → decision pushed back;
- `ingest`: closed-loop load with big frames: events/s acked durably, the
  dataflow's drain, and CPU seconds per million events per process;
- `decisions`: `GET /v1/decisions/{id}` at 50 concurrent clients;
- `backlog`: the dataflow (1 worker, 2 workers, 2 processes) and the naive
  baseline drain the same pre-loaded streams;
- `memory`: bytes per contact in Redis and in the dataflow's state;
- `livestate`: the per-contact state with every live feature on (scoring
  modes, absence rules, decay, tags, segments) against the default
  configuration on the same backlog, its bytes per contact in Redis and in
  the recovery store, and segment-change latency (event → member, and
  exit by time alone).

The first three share one stack; every event they send is tallied, and the
contacts' counters in Redis must equal the tally before the run counts as
correct.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from api.decisions.identity import sign_user_id
from benchmarks import backlog, decisions_load, livestate, memory, profiling, segment_latency
from benchmarks.correctness import wait_exact
from benchmarks.load_plan import build_plan
from benchmarks.probes import Probes
from benchmarks.progress import note
from benchmarks.shoppers import ShopperModel, Tally
from benchmarks.stack import CpuMeter, Stack, caught_up, last_entry_ids, wait_until
from benchmarks.stats import percentiles
from benchmarks.ws_client import LoadResult, LoadRunner

T = TypeVar("T")
IDENTITY_SECRET = "bench-identity-secret"
PHASES = ("latency", "ingest", "decisions", "backlog", "memory", "livestate")
EVENTS_PER_VISITOR = 11.5


@dataclass(frozen=True)
class Mode:
    """How big each phase is."""

    name: str
    latency_rates: tuple[int, ...]
    latency_seconds: float
    ingest_events: int
    decisions_seconds: float
    backlog_visitors: int
    memory_sizes: tuple[tuple[int, str], ...]
    profile: bool
    # Live state: backlog sizes in visitors (≈ contacts), and the segment-latency probe run:
    # background events/s, probes, probes/s; whether the default-config drain measures the snapshot too.
    livestate_visitors: tuple[int, ...] = ()
    segment_probes: tuple[int, int, float] = (2_000, 40, 10.0)
    livestate_snapshot_default: bool = False
    seed: int = 42


SHORT = Mode(
    "short",
    (1_000, 5_000),
    5.0,
    120_000,
    4.0,
    4_000,
    ((10_000, "full"),),
    False,
    livestate_visitors=(5_000,),
    segment_probes=(2_000, 40, 10.0),
)
TINY = Mode(
    "tiny",
    (1_000,),
    2.0,
    20_000,
    2.0,
    1_000,
    ((2_000, "full"),),
    False,
    livestate_visitors=(1_000,),
    segment_probes=(500, 10, 10.0),
)
"""Every phase at the smallest size that still checks it: what the test suite runs (the short run takes 2 minutes)."""
FULL = Mode(
    "full",
    (1_000, 5_000, 20_000),
    20.0,
    1_500_000,
    15.0,
    40_000,
    ((10_000, "full"), (100_000, "full"), (1_000_000, "reduced")),
    True,
    livestate_visitors=(10_000, 100_000),
    segment_probes=(3_000, 200, 10.0),
    livestate_snapshot_default=True,
)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result


def _load_summary(load: LoadResult, events: int) -> dict[str, Any]:
    return {
        "events_planned": events,
        "events_acked": load.events_acked + load.http_events_acked,
        "ws_events_acked": load.events_acked,
        "http_events_acked": load.http_events_acked,
        "frames_acked": load.frames_acked,
        "frames_unacked": load.frames_unacked,
        "events_rejected": load.events_rejected,
        "http_errors": load.http_errors,
        "reconnects": load.reconnects,
        "errors": load.errors[:5],
        "elapsed_s": round(load.elapsed_s, 3),
        "ack_ms": percentiles(load.ack_ms),
        "client_behind_schedule_max_ms": round(load.behind_schedule_ms, 1),
    }


def _wait_drained(stack: Stack, timeout_s: float) -> float:
    """Seconds until the dataflow has read everything appended so far."""
    client = stack.client()
    targets = last_entry_ids(client)
    started = time.monotonic()
    try:
        wait_until(lambda: caught_up(client, targets), timeout_s, "the dataflow to catch up", interval=0.01)
    except TimeoutError as exc:
        note(str(exc))
    return time.monotonic() - started


def _per_million(cpu: dict[str, float], events: int) -> dict[str, float]:
    return {name: round(seconds / max(1, events) * 1e6, 1) for name, seconds in cpu.items()}


class Suite:
    """Runs the chosen phases and gathers their figures."""

    def __init__(self, mode: Mode, only: set[str], workdir: Path) -> None:
        self.mode = mode
        self.only = only
        self.workdir = workdir
        self.tally = Tally()
        self.figures: dict[str, Any] = {}

    def wants(self, phase: str) -> bool:
        return not self.only or phase in self.only

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        steps = [
            ("stack", self._stack_phases, any(self.wants(p) for p in ("latency", "ingest", "decisions"))),
            ("backlog", self._backlog, self.wants("backlog")),
            ("memory", self._memory, self.wants("memory")),
            ("livestate", self._livestate, self.wants("livestate")),
        ]
        for name, step, wanted in steps:
            if not wanted:
                continue
            try:
                step()
            except Exception as exc:  # one broken phase must not lose the others' figures
                note(f"{name} phase failed: {type(exc).__name__}: {exc}")
                self.figures.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"[-2000:]
        self.figures["duration_s"] = round(time.monotonic() - started, 1)
        return self.figures

    # -- phases on the live stack -------------------------------------------------

    def _stack_phases(self) -> None:
        with Stack(self.workdir / "stack") as stack:
            note(f"starting the stack in {stack.directory} …")
            # The parts inherit it: signed-in shoppers' decisions are read with their user id's signature.
            os.environ["ATTIMO_IDENTITY_SECRETS"] = IDENTITY_SECRET
            stack.start_all()
            if self.wants("latency"):
                self.figures["latency"] = [self._latency(stack, rate) for rate in self.mode.latency_rates]
            if self.wants("ingest"):
                self.figures["ingest"] = self._ingest(stack)
            note("correctness: comparing every contact's counters with what was sent …")
            check = wait_exact(stack.client(), self.tally, 60)
            self.figures["correctness"] = check.as_dict()
            note(f"correct: {check.correct} ({check.contacts:,} contacts, {check.events:,} events)")
            if self.wants("decisions"):
                self.figures["decisions"] = self._decisions(stack)
            if self.mode.profile:
                self.figures["profile"] = self._profile(stack)
            stack.check_alive()

    def _latency(self, stack: Stack, rate: int) -> dict[str, Any]:
        seconds = self.mode.latency_seconds
        events = int(rate * seconds)
        # At most 80 sockets: the gateway's Redis pool holds 100 connections and
        # fails frames beyond that (see the report); probes use a few more.
        connections = max(20, min(80, rate // 50))
        model = ShopperModel(self.mode.seed + rate, prefix=f"l{rate}")
        plan = build_plan(
            model, int(events / EVENTS_PER_VISITOR) + 20, connections, frame_size=5, max_events=events
        )
        probe_rate = max(5.0, min(50.0, rate / 100))
        probes = Probes(stack.gateway_url, stack.redis_url, stack.write_key, f"probe-{rate}", probe_rate)
        runner = LoadRunner(
            stack.gateway_url,
            stack.api_url,
            stack.write_key,
            plan,
            rate=rate,
            time_limit_s=seconds * 3 + 10,
            label=f"open loop {rate:,}/s",
        )
        meter = CpuMeter(stack).start()

        async def both() -> tuple[LoadResult, Any]:
            load = asyncio.create_task(runner.run())
            probe = await probes.run(plan.events / rate)
            return await load, probe

        load, probe = _run(both())
        drain_s = _wait_drained(stack, 60)
        cpu = meter.stop()
        self.tally.merge(runner.acked_tally())
        self.tally.merge(probe.tally)
        sent = plan.events + probe.sent
        return {
            "target_events_per_s": rate,
            "events_per_frame": 5,
            "connections": connections,
            "achieved_events_per_s": round((load.events_acked + load.http_events_acked) / load.elapsed_s),
            **_load_summary(load, plan.events),
            "probes": {
                "rate_per_s": probe_rate,
                "sent": probe.sent,
                "not_visible": probe.not_visible,
                "not_pushed": probe.not_pushed,
            },
            "event_to_visible_ms": percentiles(probe.visible_ms),
            "event_to_push_ms": percentiles(probe.pushed_ms),
            "drain_after_s": round(drain_s, 2),
            "cpu_s": cpu,
            "cpu_s_per_m_events": _per_million(cpu, sent),
        }

    def _ingest(self, stack: Stack) -> dict[str, Any]:
        events = self.mode.ingest_events
        note(f"ingest: building {events:,} events …")
        model = ShopperModel(self.mode.seed, prefix="i")
        plan = build_plan(
            model, int(events / EVENTS_PER_VISITOR) + 20, connections=50, frame_size=50, max_events=events
        )
        runner = LoadRunner(
            stack.gateway_url,
            stack.api_url,
            stack.write_key,
            plan,
            rate=None,
            time_limit_s=max(60.0, events / 5_000),
            window=4,
            label="closed loop ingest",
        )
        meter = CpuMeter(stack).start()
        started = time.monotonic()
        load = _run(runner.run())
        drain_s = _wait_drained(stack, max(60.0, events / 5_000))
        processed_s = time.monotonic() - started
        cpu = meter.stop()
        self.tally.merge(runner.acked_tally())
        acked = load.events_acked + load.http_events_acked
        return {
            "events_per_frame": 50,
            "connections": 50,
            "frames_in_flight_per_connection": 4,
            "acked_events_per_s": round(acked / load.elapsed_s),
            **_load_summary(load, plan.events),
            "dataflow_drain_after_ingest_s": round(drain_s, 2),
            "end_to_end_processed_events_per_s": round(acked / processed_s),
            "cpu_s": cpu,
            "cpu_s_per_m_events": _per_million(cpu, acked),
        }

    def _decisions(self, stack: Stack) -> dict[str, Any]:
        ids = [who for who in self.tally.rows if not who.startswith("probe-")]
        note(
            f"decisions API: 50 clients for {self.mode.decisions_seconds:.0f} s over {len(ids):,} contacts …"
        )
        meter = CpuMeter(stack).start()
        sample = ids if len(ids) <= 20_000 else random.Random(3).sample(ids, 20_000)
        users = set(self.tally.links.values())

        def path(who: str) -> str:
            user = self.tally.links.get(who) or (who if who in users else None)
            signed = f"&sig={sign_user_id(IDENTITY_SECRET, user)}" if user else ""
            return f"/v1/decisions/{who}?key={stack.write_key}{signed}"

        paths = [path(who) for who in sample]
        result = decisions_load.run_paths(stack.api_url, paths, 50, self.mode.decisions_seconds)
        cpu = meter.stop()
        result["cpu_s"] = cpu
        result["api_cpu_us_per_request"] = round(
            cpu.get("api", 0.0) / max(1, result.get("requests", 0)) * 1e6, 1
        )
        return result

    def _profile(self, stack: Stack) -> dict[str, Any]:
        """py-spy on the gateway and dataflow under ingest, and on the API under read load."""
        if profiling.py_spy() is None:
            return {"error": "py-spy is not installed (pip install py-spy)"}
        out: dict[str, Any] = {}
        directory = self.workdir / "profiles"
        directory.mkdir(parents=True, exist_ok=True)
        model = ShopperModel(self.mode.seed + 1, prefix="prof")
        plan = build_plan(model, 40_000, connections=50, frame_size=50, max_events=400_000)
        pids = stack.pids()
        seconds = 8.0
        spies = {
            name: profiling.start(pids[name][0], seconds, directory / f"{name}.txt")
            for name in ("gateway", "dataflow")
        }
        runner = LoadRunner(
            stack.gateway_url,
            stack.api_url,
            stack.write_key,
            plan,
            rate=None,
            time_limit_s=60,
            label="ingest under py-spy",
        )
        load = _run(runner.run())
        _wait_drained(stack, 120)
        self.tally.merge(runner.acked_tally())
        for name, spy in spies.items():
            if spy is not None:
                spy.wait(timeout=60)
            out[name] = profiling.summarise(directory / f"{name}.txt")
        out["ingest_complete"] = load.complete
        spy = profiling.start(pids["api"][0], seconds, directory / "api.txt")
        decisions_load.run(stack.api_url, stack.write_key, list(self.tally.rows)[:20_000], 50, seconds)
        if spy is not None:
            spy.wait(timeout=60)
        out["api"] = profiling.summarise(directory / "api.txt")
        recheck = wait_exact(stack.client(), self.tally, 60)
        out["correct_after_profile_load"] = recheck.correct
        return out

    # -- phases on their own processes ----------------------------------------------

    def _backlog(self) -> None:
        note(f"backlog: {self.mode.backlog_visitors:,} visitors' events, pre-loaded into the streams …")
        work = backlog.build_backlog(self.mode.seed, self.mode.backlog_visitors)
        runs = []
        for n, (workers, processes) in enumerate(((1, 1), (2, 1), (1, 2))):
            runs.append(
                backlog.drain_dataflow(
                    self.workdir / f"backlog-{n}",
                    work,
                    workers,
                    processes,
                    time_limit_s=max(60.0, work.events / 5_000),
                )
            )
        base = backlog.drain_baseline(
            self.workdir / "baseline", work, time_limit_s=max(60.0, work.events / 2_000)
        )
        default = runs[0]["events_per_s"]
        self.figures["scaling"] = runs
        self.figures["baseline"] = {
            **base,
            "attimo_ratio_1_worker": round(default / max(1, base["events_per_s"]), 2),
            "attimo_ratio_best": round(
                max(r["events_per_s"] for r in runs) / max(1, base["events_per_s"]), 2
            ),
        }

    def _memory(self) -> None:
        results = []
        for contacts, mix in self.mode.memory_sizes:
            note(f"memory: {contacts:,} contacts ({mix} event mix) …")
            try:
                results.append(memory.measure(self.workdir / f"memory-{contacts}", contacts, mix))
            except (TimeoutError, RuntimeError) as exc:
                results.append({"contacts": contacts, "mix": mix, "error": str(exc)[-800:]})
        self.figures["memory"] = results

    def _livestate(self) -> None:
        backlogs = []
        for visitors in self.mode.livestate_visitors:
            note(f"livestate: building the backlog of {visitors:,} visitors …")
            backlogs.append((visitors, livestate.build_backlog(self.mode.seed + 7, visitors)))
        figures = livestate.run(self.workdir, backlogs, self.mode.livestate_snapshot_default)
        del backlogs
        rate, probes, probe_rate = self.mode.segment_probes
        figures["segment_latency"] = segment_latency.measure(
            self.workdir / "segment-latency", self.mode.seed + 8, rate, probes, probe_rate
        )
        self.figures["livestate"] = figures
