"""Decisions API under 50 concurrent keep-alive clients, over known contacts.

`wrk` (C, one thread) is used when installed, since a Python client would
take a good share of the same two cores; otherwise an asyncio raw-socket
client does the job and the report says which one measured.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.http_client import HttpConnection
from benchmarks.stats import percentiles

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(api_url: str, write_key: str, ids: list[str], connections: int, seconds: float) -> dict[str, Any]:
    """wrk over `GET /v1/decisions/{id}?key=…` for random ids of `ids`."""
    return wrk_paths(api_url, [f"/v1/decisions/{i}?key={write_key}" for i in ids], connections, seconds)


def wrk_paths(api_url: str, paths: list[str], connections: int, seconds: float) -> dict[str, Any]:
    """wrk (one thread) over GETs of random `paths`; its figures."""
    lua_paths = ",".join(f'"{p}"' for p in paths)
    script = (
        f"local paths = {{{lua_paths}}}\n"
        "math.randomseed(7)\n"
        "request = function()\n"
        "  return wrk.format('GET', paths[math.random(#paths)])\n"
        "end\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        path = handle.name
    try:
        proc = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "-s",
                path,
                api_url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=False,
        )
    finally:
        Path(path).unlink(missing_ok=True)
    out = proc.stdout
    result: dict[str, Any] = {"client": "wrk -t1", "connections": connections}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["requests_per_s"] = round(float(rps.group(1))) if rps else 0
    total = re.search(r"(\d+) requests in", out)
    result["requests"] = int(total.group(1)) if total else 0
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result["non_2xx"] = int(bad.group(1)) if bad else 0
    errors = re.search(r"Socket errors:(.*)", out)
    result["socket_errors"] = errors.group(1).strip() if errors else ""
    latency: dict[str, float] = {}
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.MULTILINE):
        latency[f"p{pct}"] = round(_ms(value), 2)
    maximum = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out)
    if maximum:
        latency["max"] = round(_ms(maximum.group(1)), 2)
    result["latency_ms"] = latency
    if not rps:
        result["raw"] = (out + proc.stderr)[-500:]
    return result


async def _python_clients(api_url: str, paths: list[str], connections: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    async def client(n: int) -> None:
        rng = random.Random(n)
        conn = HttpConnection(api_url)
        try:
            while time.monotonic() < deadline:
                raw = conn.prepare("GET", rng.choice(paths))
                start = time.monotonic()
                reply = await conn.send(raw)
                latencies.append((time.monotonic() - start) * 1000)
                statuses[reply.status] = statuses.get(reply.status, 0) + 1
        finally:
            await conn.close()

    started = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(connections)))
    elapsed = time.monotonic() - started
    return {
        "client": "python asyncio (wrk not installed)",
        "connections": connections,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed),
        "non_2xx": sum(v for k, v in statuses.items() if k != 200),
        "latency_ms": percentiles(latencies, (50, 75, 90, 99)),
    }


def run(
    api_url: str, write_key: str, ids: list[str], connections: int = 50, seconds: float = 10.0
) -> dict[str, Any]:
    """Requests/s and latency of `GET /v1/decisions/{id}` over random known ids."""
    sample = ids if len(ids) <= 20_000 else random.Random(3).sample(ids, 20_000)
    return run_paths(api_url, [f"/v1/decisions/{i}?key={write_key}" for i in sample], connections, seconds)


def run_paths(api_url: str, paths: list[str], connections: int = 50, seconds: float = 10.0) -> dict[str, Any]:
    """Requests/s and latency of GETs of random `paths` (wrk when installed, else asyncio clients)."""
    if shutil.which("wrk"):
        return wrk_paths(api_url, paths, connections, seconds)
    return asyncio.run(_python_clients(api_url, paths, connections, seconds))
