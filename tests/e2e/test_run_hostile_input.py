"""`kumeo run --input` with hostile lines: each is reported by its line number, the others still run (exit 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]

WORKFLOW = """workflow Orders {
  source: NATS("orders.new")
  target: NATS("orders.out")
  agents: [ DataProcessor(id: "clean", input: source, config: { required_fields: ["id"] }) ]
}
"""


def test_run_reports_bad_lines_by_number_and_runs_the_rest(tmp_path: Path) -> None:
    workflow = tmp_path / "orders.kumeo"
    workflow.write_text(WORKFLOW)
    events = tmp_path / "events.jsonl"
    lines = [
        b'{"id": 1}',
        b"[" * 10_000 + b"]" * 10_000,  # 2: deeper than any JSON decoder allows
        b'{"id": 3}',
        b'{"id": 4, "amount": }',  # 4: invalid JSON
        b'{"id": 5, "amount": NaN}',  # 5: not JSON
        b'{"id": 6, "name": "caf\xe9"}',  # 6: not UTF-8
        b'{"id": 7, "blob": "' + b"x" * (1024 * 1024) + b'"}',  # 7: larger than the server takes
        b'{"id": 8}',
    ]
    events.write_bytes(b"\n".join(lines) + b"\n")
    proc = subprocess.run([sys.executable, "-m", "kumeo_iac", "run", str(workflow), "--input", str(events)],
                          capture_output=True, text=True, timeout=90, check=False, env=dict(os.environ))
    assert proc.returncode == 1, proc.stderr  # documented: the input had problems; the rest still ran
    err = proc.stderr
    assert "Traceback" not in err and "internal error" not in err
    assert f"{events}:2: error: JSON nested too deeply to decode" in err
    assert f"{events}:4: error: invalid JSON: Expecting value (column 21)" in err
    assert f"{events}:5: error: non-finite number NaN at $.amount is not JSON" in err
    assert f"{events}:6: error: the line is not UTF-8 (invalid byte 0xe9 at column 23)" in err
    assert f"{events}:7: error: the event is " in err and "over the NATS server's max_payload of 1048576" in err
    assert "5 lines of" in err and "were not valid events" in err
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(d["event_id"] for d in out) == ["events-1", "events-3", "events-8"]
    assert all(d["subject"] == "orders.out" for d in out)
