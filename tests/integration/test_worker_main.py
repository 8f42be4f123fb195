"""`python -m kumeo_iac.runtime` as a pod runs it: a Plan file, SIGTERM drains and exits 0 without losing events."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from worker_support import (
    Harness,
    PassThrough,
    agent_plan,
    create_streams,
    make_agent,
    new_slug,
    publish_events,
    read_subject,
    source_subject,
    stream_names,
    wait_count,
    workflow_plan,
)

from kumeo_iac.compile._plan import Plan

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def harness(nats_url):
    h = await Harness(nats_url).open()
    yield h
    await h.close()


async def test_sigterm_drains_in_flight_events_and_exits_0(harness, tmp_path):
    slug = new_slug()
    plan = workflow_plan(slug, [agent_plan(slug, "a", {"": source_subject(slug)}, timeout=5.0, ack_wait=30.0)],
                         harness.url)
    await create_streams(harness.js, plan)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(Plan([plan]).to_json())
    internal, sources = stream_names(slug)
    out = f"kumeo.{slug}.a.out"
    n = 40
    await publish_events(harness.js, source_subject(slug), [{"n": i} for i in range(n)])

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)]),
           "KUMEO_TEST_DELAY": "0.4", "NATS_URL": harness.url, "KUMEO_AGENT": "a"}
    process = subprocess.Popen(  # noqa: ASYNC220 - started once; the waits below run in a thread
        [sys.executable, "-m", "kumeo_iac.runtime", "--plan", str(plan_file), "--health-port", "-1",
         "--batch-size", "8", "--agent-class", "worker_support:SlowPassThrough"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert await wait_count(harness.js, internal, out, 8, timeout=20) >= 8
        await asyncio.sleep(0.1)  # the next batch is now in the agent's hands
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read().decode()
    assert code == 0, stderr

    done = await wait_count(harness.js, internal, out, 0)
    assert 16 <= done < n  # the in-flight batch finished before the exit
    info = await harness.js.consumer_info(sources, "a")
    assert info.num_ack_pending == 0  # nothing was left fetched-but-unanswered
    assert info.num_pending + done == n

    # Nothing was lost: a new worker finishes the rest, and nothing is doubled.
    await harness.run_worker(plan, "a", make_agent(PassThrough, plan, "a"))
    assert await wait_count(harness.js, internal, out, n) == n
    await asyncio.sleep(0.3)
    msgs = await read_subject(harness.js, internal, out)
    assert sorted(json.loads(m.data)["n"] for m in msgs) == list(range(n))


def test_a_bad_invocation_exits_1_with_one_line(tmp_path):
    plan_file = tmp_path / "plan.json"
    slug = new_slug()
    plan_file.write_text(Plan([workflow_plan(slug, [agent_plan(slug, "a", {"": source_subject(slug)})])]).to_json())
    result = subprocess.run(
        [sys.executable, "-m", "kumeo_iac.runtime", "--plan", str(plan_file), "--agent", "nope"],
        capture_output=True, text=True, timeout=30, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"kumeo runtime: error: workflow wf-{slug} has no agent 'nope' (agents: a)"]
