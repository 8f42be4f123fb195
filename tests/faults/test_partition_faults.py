"""A partitioned agent under `kumeo run --processes` (issue 17, item 2): one process per lane; one lane's process is
killed with SIGKILL mid-stream and the supervisor restarts it on the same lane. For every key the results arrive in
input order, nothing is lost and nothing is printed twice, and every lane's process handled events."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from test_run_supervision import Run, alive

pytestmark = [pytest.mark.nats, pytest.mark.timeout(180)]

EVENTS, KEYS, LANES = 10_000, 500, 4

WORKFLOW = """workflow Lanes {
  source: NATS("lanes.in")
  target: NATS("lanes.out")
  agents: [
    DataProcessor(id: "prep", input: source),
    Custom("lane_handlers:total", id: "total", input: prep.output, output: "target.lanes.out", timeout: "1s",
           partitions: 4, partition_key: "customer.id")
  ]
}
"""

HANDLERS = '''
import os
import time


def total(payload):
    time.sleep(0.004)
    return {**payload, "lane": int(os.environ["KUMEO_PARTITION"])}
'''


def test_sigkill_of_one_lane_keeps_every_keys_order_and_loses_nothing(tmp_path: Path) -> None:
    workflow = tmp_path / "lanes.kumeo"
    workflow.write_text(WORKFLOW)
    (tmp_path / "lane_handlers.py").write_text(HANDLERS)
    data = tmp_path / "events.jsonl"
    events = [{"customer": {"id": f"k{i % KEYS}"}, "seq": i // KEYS} for i in range(EVENTS)]
    data.write_text("".join(json.dumps(e) + "\n" for e in events))

    run = Run(str(workflow), "--input", str(data), "--processes", "--timeout", "150")
    try:
        run.wait_lines(EVENTS // 5, timeout=90)
        victim = run.child("--agent total")
        os.kill(victim, signal.SIGKILL)
        killed_at = len(run.lines)
        code = run.wait(160)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert killed_at < EVENTS, "the kill should happen mid-stream"
    assert code == 0, run.stderr[-4000:]
    assert "exited with code -9; restarting" in run.stderr and "agent 'total[" in run.stderr, run.stderr[-4000:]
    assert "Traceback" not in run.stderr
    assert not alive(victim)

    results = [line for line in run.lines if line["subject"] == "lanes.out"]
    assert not [line for line in run.lines if line.get("error")], "no event may be dead-lettered"
    counted = Counter((r["data"]["customer"]["id"], r["data"]["seq"]) for r in results)
    doubled = {k: n for k, n in counted.items() if n > 1}
    lost = {(e["customer"]["id"], e["seq"]) for e in events} - set(counted)
    assert not lost and not doubled, f"{len(lost)} lost (e.g. {sorted(lost)[:3]}), {len(doubled)} twice"
    seqs: dict[str, list[int]] = defaultdict(list)
    lanes: dict[str, set[int]] = defaultdict(set)
    for r in results:
        seqs[r["data"]["customer"]["id"]].append(r["data"]["seq"])
        lanes[r["data"]["customer"]["id"]].add(r["data"]["lane"])
    out_of_order = {k: s for k, s in seqs.items() if s != sorted(s)}
    assert not out_of_order, f"{len(out_of_order)} keys out of order, e.g. {list(out_of_order.items())[:2]}"
    assert all(len(v) == 1 for v in lanes.values()), "a key moved between lanes"
    assert set().union(*lanes.values()) == set(range(LANES))
