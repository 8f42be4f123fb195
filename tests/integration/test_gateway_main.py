"""`python -m kumeo_iac.runtime.io` as the gateway pod runs it: a compiled Plan with an HTTP source, an event
POSTed over HTTP lands in the workflow's source stream, /healthz and /readyz answer, SIGTERM exits 0; a Kafka
endpoint is refused at start with one line and exit 1."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from secured_support import connect_as, deploy, secured_server
from worker_support import reap, sigterm

from kumeo_iac.compile import PlatformSettings, compile_program
from kumeo_iac.spec import NATS, DataProcessor, HttpSource, Kafka, Program, WorkflowSpec

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


async def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"{url} never became ready")


async def test_gateway_process_ingests_http_events_and_exits_0_on_sigterm(nats_url, tmp_path):
    import nats

    from kumeo_iac.jetstream import ensure_stream, stream_config_from_inputs

    http_port, health_port = _free_port(), _free_port()
    program = Program(workflows=[WorkflowSpec(
        name="WebIngest", sources=[HttpSource("/events", id="web", options={"port": http_port})],
        targets=[NATS("web.out")], agents=[DataProcessor(id="clean", input="source.web", output="target.web.out")])])
    plan = compile_program(program, settings=PlatformSettings(nats_url=nats_url))
    wf = plan.workflows[0]
    assert any(o["metadata"]["name"] == "web-ingest-gateway" for o in wf.kubernetes)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for stream in wf.streams:
        await ensure_stream(js, stream_config_from_inputs(dict(stream.config)))
    (source,) = wf.sources
    process = subprocess.Popen(  # started once; the waits below run in a thread
        [sys.executable, "-m", "kumeo_iac.runtime.io", "--plan", str(plan_file), "--workflow", "WebIngest",
         "--health-port", str(health_port), "--http-host", "127.0.0.1", "--log-level", "INFO"],
        env={**_env(), "NATS_URL": nats_url}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        await _wait_ready(f"http://127.0.0.1:{health_port}/readyz", process)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{health_port}/healthz")).status_code == 200
            response = await client.post(f"http://127.0.0.1:{http_port}/events", json={"amount": 42})
            assert response.status_code in (200, 201, 202), response.text
            metrics = (await client.get(f"http://127.0.0.1:{health_port}/metrics")).text
            assert "kumeo_gateway_up" in metrics

        sub = await js.pull_subscribe(source.subject, stream=source.stream)
        (msg,) = await sub.fetch(1, timeout=5)
        assert json.loads(msg.data) == {"amount": 42}
        assert msg.headers and msg.headers.get("Kumeo-Event-Id")

        code = await sigterm(process, 20)
    finally:
        reap(process)
        await nc.close()
    stderr = process.stderr.read().decode()
    assert code == 0, stderr


async def test_gateway_runs_from_its_deployments_own_plan_alone(nats_url):
    """The gateway pod as compiled: its Deployment's command and args (no --plan; only the health port moved off
    8081 for the test) and its environment, whose KUMEO_PLAN_JSON holds the workflow's endpoints and no agent."""
    import nats

    from kumeo_iac.compile import Plan
    from kumeo_iac.compile._kubernetes import GATEWAY_HEALTH_PORT, PLAN_ENV
    from kumeo_iac.jetstream import ensure_stream, stream_config_from_inputs

    http_port, health_port = _free_port(), _free_port()
    program = Program(workflows=[WorkflowSpec(
        name="PodIngest", sources=[HttpSource("/events", id="web", options={"port": http_port})],
        targets=[NATS("pod.out")], agents=[DataProcessor(id="clean", input="source.web", output="target.pod.out")])])
    (wf,) = compile_program(program, settings=PlatformSettings(nats_url=nats_url)).workflows
    (deployment,) = [o for o in wf.kubernetes if o["kind"] == "Deployment"
                     and o["metadata"]["name"] == "pod-ingest-gateway"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["--workflow", "PodIngest", "--health-port", str(GATEWAY_HEALTH_PORT)]
    args = [*container["args"][:-1], str(health_port)]
    env = {e["name"]: e["value"] for e in container["env"]}
    own = Plan.from_json(env[PLAN_ENV]).workflows[0]
    assert own.agents == [] and own.sources == [dataclasses.replace(s, line=None) for s in wf.sources]  # no lines
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for stream in wf.streams:
        await ensure_stream(js, stream_config_from_inputs(dict(stream.config)))
    (source,) = wf.sources
    process = subprocess.Popen(  # started once; the waits below run in a thread
        [sys.executable, *container["command"][1:], *args],
        env={**base, **env, "PYTHONPATH": str(ROOT)}, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        await _wait_ready(f"http://127.0.0.1:{health_port}/readyz", process)
        async with httpx.AsyncClient() as client:
            response = await client.post(f"http://127.0.0.1:{http_port}/events", json={"amount": 5})
            assert response.status_code in (200, 201, 202), response.text
        sub = await js.pull_subscribe(source.subject, stream=source.stream)
        (msg,) = await sub.fetch(1, timeout=5)
        assert json.loads(msg.data) == {"amount": 5}
        code = await sigterm(process, 20)
    finally:
        reap(process)
        await nc.close()
    assert code == 0, process.stderr.read().decode()


def test_gateway_with_a_malformed_plan_in_the_environment_exits_1_with_one_line():
    env = {k: v for k, v in _env().items() if k not in ("KUMEO_PLAN", "KUMEO_PLAN_JSON")}
    result = subprocess.run(
        [sys.executable, "-m", "kumeo_iac.runtime.io", "--health-port", "-1"],
        env={**env, "KUMEO_PLAN_JSON": '{"workflows": ['}, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kumeo gateway: error: $KUMEO_PLAN_JSON is not a Kumeo Plan (JSONDecodeError")


def test_gateway_refuses_kafka_with_one_line_and_exit_1(tmp_path):
    program = Program(workflows=[WorkflowSpec(
        name="Streamer", sources=[Kafka("orders", id="k")], targets=[NATS("out")],
        agents=[DataProcessor(id="clean", input="source.k", output="target.out")])])
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(compile_program(program).to_json())
    result = subprocess.run(
        [sys.executable, "-m", "kumeo_iac.runtime.io", "--plan", str(plan_file), "--health-port", "-1",
         "--nats", "nats://127.0.0.1:1"],
        env=_env(), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kumeo gateway: error: ") and "Kafka" in lines[0] and "Streamer" in lines[0]


async def test_gateway_runs_as_its_own_nats_user_and_may_do_nothing_else(tmp_path, monkeypatch):
    """Per-agent auth on: the gateway pod's identity (from the Plan) is enough to ingest over HTTP and deliver
    through its target consumer on a real server running the generated authorization config, and it is refused
    publishing on an agent's output subject."""

    from kumeo_iac.runtime.io import target_consumers
    from kumeo_iac.spec import FileTarget

    http_port, health_port = _free_port(), _free_port()
    out_file = tmp_path / "delivered.jsonl"
    program = Program(workflows=[WorkflowSpec(
        name="SecureIngest", sources=[HttpSource("/events", id="web", options={"port": http_port})],
        targets=[FileTarget(str(out_file), id="sink")],
        agents=[DataProcessor(id="clean", input="source.web", output="target.sink")])])
    plan = compile_program(program, settings=PlatformSettings(nats_auth=True))
    wf = plan.workflows[0]
    identity = wf.gateway_identity
    assert identity is not None and identity.user == "secure-ingest-gateway"
    deployment = next(o for o in wf.kubernetes if o["kind"] == "Deployment"
                      and o["metadata"]["name"] == "secure-ingest-gateway")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NATS_USER"]["value"] == identity.user
    # the workflow's one credentials Secret, under the gateway's own user
    assert env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "secure-ingest-nats",
                                                                 "key": identity.user}

    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    process = None
    with secured_server(plan, [], tmp_path, monkeypatch) as (server, _, passwords):
        try:
            # the deployer's part: the streams and the target consumer, which is all the gateway binds to
            await deploy(server.url, plan, passwords, target_consumers(wf))

            process = subprocess.Popen(  # started once; the waits below run in a thread
                [sys.executable, "-m", "kumeo_iac.runtime.io", "--plan", str(plan_file), "--workflow", "SecureIngest",
                 "--health-port", str(health_port), "--http-host", "127.0.0.1", "--base-dir", str(tmp_path)],
                env={**_env(), "NATS_URL": server.url, "NATS_USER": identity.user,
                     "NATS_PASSWORD": passwords[identity.user], "NATS_INBOX_PREFIX": identity.inbox_prefix},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            await _wait_ready(f"http://127.0.0.1:{health_port}/readyz", process)
            async with httpx.AsyncClient() as client:
                response = await client.post(f"http://127.0.0.1:{http_port}/events", json={"amount": 7})
                assert response.status_code == 202, response.text

            # an agent's result on the target subject is delivered to the file by the gateway's consumer
            (target,) = wf.targets
            clean = wf.agent("clean")
            agent = await connect_as(server.url, clean.identity, passwords, [])
            await agent.jetstream().publish(target.subject, b'{"amount": 7, "clean": true}')
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (out_file.exists() and out_file.read_text().strip()):
                await asyncio.sleep(0.1)
            assert json.loads(out_file.read_text().splitlines()[0]) == {"amount": 7, "clean": True}
            await agent.close()

            # and the gateway's identity is refused what is not its job
            errors: list[str] = []
            gateway = await connect_as(server.url, identity, passwords, errors)
            await gateway.publish(clean.output_subject, b"{}")
            await gateway.flush()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not errors:
                await asyncio.sleep(0.05)
            await gateway.close()
            assert any("permissions violation" in e.lower() for e in errors), errors

            assert await sigterm(process, 20) == 0
        finally:
            reap(process)
