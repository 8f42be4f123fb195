"""`python -m kumeo_iac.runtime.io` as the gateway pod runs it: a compiled Plan with an HTTP source, an event
POSTed over HTTP lands in the workflow's source stream, /healthz and /readyz answer, SIGTERM exits 0; a Kafka
endpoint is refused at start with one line and exit 1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

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
    from kumeo_providers._jetstream import ensure_stream, stream_config_from_inputs

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
    process = subprocess.Popen(  # noqa: ASYNC220 - started once; waits below run in a thread
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

        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await nc.close()
    stderr = process.stderr.read().decode()
    assert code == 0, stderr


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
