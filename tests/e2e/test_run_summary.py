"""`kumeo run`'s progress and closing summary (issue 16): the counts agree with the lines printed on stdout, and an
event parked by a HumanReview agent is explained (how many, where to decide, when it resumes), on a real nats-server.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.ui_support import DEMO, start_dashboard

pytestmark = [pytest.mark.nats, pytest.mark.timeout(240)]

KUMEO = [sys.executable, "-m", "kumeo_iac.cli"]
COUNTS = re.compile(r"(\d+) in, (\d+) routed, (\d+) dead letters?, (\d+) waiting for review")


def kumeo_run(path: Path, events: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KUMEO, "run", str(path), "--input", str(events), *extra], capture_output=True,
                          text=True, timeout=120)


def workflow(tmp_path: Path) -> tuple[Path, Path]:
    """The UI demo's OrderReview (validate, score, a HumanReview of large orders, route) and its 4 orders."""
    for name in ("orders.kumeo", "orders.jsonl"):
        shutil.copy(DEMO / name, tmp_path / name)
    return tmp_path / "orders.kumeo", tmp_path / "orders.jsonl"


def summary(stderr: str) -> tuple[int, ...]:
    (line,) = [line for line in stderr.splitlines() if line.startswith("kumeo run: drained in ")]
    found = COUNTS.search(line)
    assert found, line
    return tuple(int(n) for n in found.groups())


def test_the_summary_counts_the_lines_printed_and_explains_the_review_on_an_embedded_server(tmp_path):
    path, events = workflow(tmp_path)
    done = kumeo_run(path, events)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    routed = [o for o in lines if "error" not in o]
    dead = [o for o in lines if "error" in o]
    assert summary(done.stderr) == (4, len(routed), len(dead), 1) == (4, 2, 1, 1)
    # Every progress line (printed on a change, not a terminal) uses the same words, and none counts more than
    # the summary; the last one before the summary ends with nothing in flight or agrees with it.
    progress = [line for line in done.stderr.splitlines()
                if COUNTS.search(line) and line.startswith("kumeo run: ") and "drained" not in line]
    for line in progress:
        counts = tuple(int(n) for n in COUNTS.search(line).groups())
        assert all(a <= b for a, b in zip(counts, summary(done.stderr), strict=True)), line
        assert re.search(r", \d+ in flight$", line), line
    note = next(line for line in done.stderr.splitlines() if "waits for review" in line)
    assert "1 event waits for review at agent 'review'" in note
    assert f"`kumeo dashboard {path} --nats URL`" in note and "--follow" in note
    assert "removed when the run ends" in note and "resume on the next run" in note
    # The parked event is not misreported as one that reached nothing.
    assert "reached no target" not in done.stderr


def test_a_review_decided_in_the_dashboard_resumes_on_the_next_run(tmp_path, nats_url):
    path, events = workflow(tmp_path)
    first = kumeo_run(path, events, "--nats", nats_url)
    assert first.returncode == 0, first.stderr
    assert summary(first.stderr) == (4, 2, 1, 1)
    note = next(line for line in first.stderr.splitlines() if "waits for review" in line)
    assert f"decide them with `kumeo dashboard {path} --nats {nats_url}` (or the review API)" in note
    assert f"they resume on the next run (`kumeo run {path} --nats {nats_url}`)" in note

    # Decide it as the note says: `kumeo dashboard PATH --nats URL`, its review API.
    dashboard, url = start_dashboard(path, nats_url, tmp_path)
    try:
        base, token = url.split("/#token=")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        def call(method: str, route: str, body: dict | None = None) -> object:
            request = urllib.request.Request(f"{base}{route}", method=method, headers=headers,
                                             data=json.dumps(body).encode() if body is not None else None)
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())

        (review,) = call("GET", f"/api/reviews?file={path.name}")["reviews"]
        assert review["payload"]["order_id"] == "o-2"
        call("POST", f"/api/reviews/{review['workflow']}/review/{review['id']}/approve?file={path.name}",
             {"comment": "known customer"})
    finally:
        dashboard.stop()

    # The next run carries the approved order on; nothing waits any more.
    empty = tmp_path / "none.jsonl"
    empty.write_text("")
    second = kumeo_run(path, empty, "--nats", nats_url)
    assert second.returncode == 0, second.stderr
    (released,) = [json.loads(line) for line in second.stdout.splitlines()]
    assert released["subject"] == "orders.accepted" and released["data"]["order_id"] == "o-2"
    assert released["data"]["review"]["decision"] == "approved"
    assert "waits for review" not in second.stderr
