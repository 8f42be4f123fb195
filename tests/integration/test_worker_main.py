"""`python -m kumeo_iac.runtime` as a pod runs it: a Plan file, SIGTERM drains and exits 0 without losing events."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from worker_support import (
    PassThrough,
    agent_plan,
    create_streams,
    make_agent,
    new_slug,
    publish_events,
    read_subject,
    reap,
    sigterm,
    source_subject,
    stream_names,
    wait_count,
    workflow_plan,
)

from kumeo_iac.compile._plan import Plan

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]


async def test_sigterm_drains_in_flight_events_and_exits_0(harness, tmp_path):
    slug, plan = await harness.one_agent(timeout=5.0, ack_wait=30.0)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(Plan([plan]).to_json())
    internal, sources = stream_names(slug)
    out = f"kumeo.{slug}.a.out"
    n = 40
    await publish_events(harness.js, source_subject(slug), [{"n": i} for i in range(n)])

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)]),
           "KUMEO_TEST_DELAY": "0.4", "NATS_URL": harness.url, "KUMEO_AGENT": "a"}
    process = subprocess.Popen(  # started once; the waits below run in a thread
        [sys.executable, "-m", "kumeo_iac.runtime", "--plan", str(plan_file), "--health-port", "-1",
         "--batch-size", "8", "--agent-class", "worker_support:SlowPassThrough"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert await wait_count(harness.js, internal, out, 8, timeout=20) >= 8
        await asyncio.sleep(0.1)  # the next batch is now in the agent's hands
        code = await sigterm(process, 15)
    finally:
        reap(process)
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


def _container(wf, agent_id: str) -> dict:
    """The agent container of a compiled Deployment."""
    from kumeo_iac.compile import dns_name

    (deployment,) = [o for o in wf.kubernetes if o["kind"] == "Deployment"
                     and o["metadata"]["name"] == dns_name(wf.slug, agent_id)]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _pod_env(container: dict) -> dict[str, str]:
    """The process environment a pod would give the container: only its own variables (no KUMEO_PLAN file)."""
    env = {e["name"]: e["value"] for e in container["env"]}
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {**base, **env, "PYTHONPATH": str(ROOT), "KUMEO_HEALTH_PORT": "-1"}


async def test_a_worker_runs_from_its_deployments_own_plan_alone(harness):
    """The pod as compiled: the command and args of the Deployment (no --plan) and its environment, whose
    KUMEO_PLAN_JSON holds that agent's part of the Plan; an event published on the source comes out on the target."""
    from kumeo_iac.compile import PlatformSettings, compile_program
    from kumeo_iac.compile._kubernetes import PLAN_ENV
    from kumeo_iac.spec import NATS, DataProcessor, Program, WorkflowSpec

    slug = new_slug()
    program = Program(workflows=[WorkflowSpec(
        name=f"Pod{slug}", sources=[NATS(f"in.{slug}")], targets=[NATS(f"out.{slug}")],
        agents=[DataProcessor(id="first", config={"required_fields": ["n"]}),
                DataProcessor(id="clean", input="first.output", output=f"target.out.{slug}",
                              config={"features": ["n", "double: n * 2"]})])])
    (wf,) = compile_program(program, settings=PlatformSettings(nats_url=harness.url)).workflows
    await create_streams(harness.js, wf)
    container = _container(wf, "clean")
    assert container["args"] == ["--agent", "clean"] and "--plan" not in container["command"]
    env = _pod_env(container)
    assert "KUMEO_PLAN" not in env and env["NATS_URL"] == harness.url
    own = Plan.from_json(env[PLAN_ENV])
    assert [a.id for a in own.workflows[0].agents] == ["clean"]  # it knows nothing of "first"

    first = wf.agent("first")
    (target,) = wf.targets
    process = subprocess.Popen(  # started once; the waits below run in a thread
        [sys.executable, *container["command"][1:], *container["args"]],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
    )
    try:
        # what "first" would publish: "clean" reads it from the workflow's internal stream
        await harness.js.publish(first.output_subject, json.dumps({"n": 21}).encode())
        assert await wait_count(harness.js, target.stream, target.subject, 1, timeout=20) == 1, \
            process.stderr.read1().decode() if process.poll() is not None else "no output yet"
        (msg,) = await read_subject(harness.js, target.stream, target.subject)
        assert json.loads(msg.data) == {"n": 21, "double": 42}
        code = await sigterm(process, 15)
    finally:
        reap(process)
    assert code == 0, process.stderr.read().decode()


@pytest.mark.parametrize("value, reason", [
    ('{"workflows": [{"name": "x", ', "JSONDecodeError"),  # cut short
    ('{"plan": {}}', "KeyError: 'workflows'"),  # JSON, but not a Plan
    ('[1, 2]', "TypeError"),
])
def test_a_malformed_plan_in_the_environment_exits_1_with_one_line(value, reason):
    env = {k: v for k, v in os.environ.items() if k not in ("KUMEO_PLAN", "KUMEO_PLAN_JSON")}
    result = subprocess.run(
        [sys.executable, "-m", "kumeo_iac.runtime", "--agent", "clean"],
        capture_output=True, text=True, timeout=30, check=False,
        env={**env, "PYTHONPATH": str(ROOT), "KUMEO_PLAN_JSON": value, "NATS_URL": "nats://127.0.0.1:1"},
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kumeo runtime: error: $KUMEO_PLAN_JSON is not a Kumeo Plan (")
    assert reason in lines[0] and lines[0].endswith("regenerate it with `kumeo render`")
    assert "Traceback" not in result.stderr


def test_no_plan_at_all_exits_1_naming_every_way_to_give_one():
    env = {k: v for k, v in os.environ.items() if k not in ("KUMEO_PLAN", "KUMEO_PLAN_JSON")}
    result = subprocess.run(
        [sys.executable, "-m", "kumeo_iac.runtime", "--agent", "clean"], capture_output=True, text=True,
        timeout=30, check=False, env={**env, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "kumeo runtime: error: no Plan given: pass --plan PLAN.json, or set KUMEO_PLAN (a file) or KUMEO_PLAN_JSON"]


def test_a_plan_file_wins_over_the_environment(tmp_path):
    """--plan (or KUMEO_PLAN) is read before KUMEO_PLAN_JSON: running a pod's image locally with a file works."""
    slug = new_slug()
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(Plan([workflow_plan(slug, [agent_plan(slug, "a", {"": source_subject(slug)})])]).to_json())
    env = {k: v for k, v in os.environ.items() if k != "KUMEO_PLAN"}
    result = subprocess.run(
        [sys.executable, "-m", "kumeo_iac.runtime", "--plan", str(plan_file), "--agent", "nope"],
        capture_output=True, text=True, timeout=30, check=False,
        env={**env, "PYTHONPATH": str(ROOT), "KUMEO_PLAN_JSON": "not even JSON"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"kumeo runtime: error: workflow wf-{slug} has no agent 'nope' (agents: a)"]
