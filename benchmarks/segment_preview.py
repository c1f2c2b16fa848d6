"""How long a segment count preview takes over N contacts (redis-server, dataflow and API as real processes).

    python -m benchmarks.segment_preview --contacts 20000 --repeat 5

Seeds N known contacts (an identify with a `plan` trait, a third of them
`gold`) straight into the ingest streams, waits until the dataflow has
processed them, then asks `POST /v1/admin/segments/preview` for "plan is
gold" `--repeat` times. Each answer is checked (matching = the gold third,
evaluated = N) before its time is reported. A preview is no per-event work:
this is the latency an operator waits, on an idle stack.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.stack import SHARDS, Stack, caught_up, last_entry_ids, wait_until
from state.events import Identify
from state.streams import append_events_sync

TREE = {"kind": "trait", "name": "plan", "value": "gold"}
RESULTS = Path(__file__).parent / "results"
SETTLE_S = 5.0


def seed(stack: Stack, contacts: int) -> int:
    """N identified contacts, every third gold; returns how many are gold once the dataflow has them."""
    client = stack.client()
    now = datetime.now(UTC)
    for start in range(0, contacts, 500):
        events = [Identify(message_id=str(uuid.uuid4()), user_id=f"user-{i}", timestamp=now, received_at=now,
                           traits={"plan": "gold" if i % 3 == 0 else "silver"})
                  for i in range(start, min(contacts, start + 500))]
        for chunk in range(0, len(events), 20):  # as the gateway appends: one entry per frame
            append_events_sync(client, events[chunk:chunk + 20], SHARDS)
    targets = last_entry_ids(client)
    wait_until(lambda: caught_up(client, targets), 600, "the dataflow to process the seed")
    # Read is not yet evaluated and written: let the last batches through, so the first preview does not
    # queue behind the seed (what is measured is a preview on an idle stack).
    time.sleep(SETTLE_S)
    return len(range(0, contacts, 3))


def preview(stack: Stack) -> dict[str, Any]:
    request = urllib.request.Request(
        stack.api_url + "/v1/admin/segments/preview?timeout_s=30", data=json.dumps({"when": TREE}).encode(),
        headers={"Authorization": f"Bearer {stack.admin_token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=40) as response:
        return dict(json.loads(response.read()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Stack(Path(tmp)) as stack:
        stack.start_redis()
        stack.start_dataflow()
        stack.start_api()
        gold = seed(stack, args.contacts)
        walls: list[float] = []
        answers: list[dict[str, Any]] = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            answer = preview(stack)
            walls.append((time.perf_counter() - started) * 1000)
            assert answer["matching"] == gold and answer["evaluated"] == args.contacts, answer
            answers.append(answer)
        result = {"contacts": args.contacts, "contact_shards": answers[0]["shards"] // 2, "stream_shards": SHARDS,
                  "matching": gold, "wall_ms": [round(w, 1) for w in walls],
                  "median_ms": round(statistics.median(walls), 1), "max_ms": round(max(walls), 1)}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"segment-preview-{datetime.now(UTC).date().isoformat()}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| contacts | contact shards | preview median | max |\n|---|---|---|---|\n"
          f"| {args.contacts:,} | {result['contact_shards']} | {result['median_ms']} ms | {result['max_ms']} ms |")
    print(f"written {out}")


if __name__ == "__main__":
    main()
