"""An agent reads only its own input (issue 14, item 10): consumers belong to the deployer.

A real nats-server runs the authorization config compiled from the Plan (``render_nats_config``). The deployer
(``kumeo-deployer``) creates the streams and every durable, the agents' and the gateway's target durables, as the
Workflow component does at ``pulumi up``. Then, with the compiled identities:

* agent ``b`` re-creating (or updating) its durable with the filter ``kumeo.<wf>.>`` — every other agent's output —
  is refused by the server, in each form of the API (``CONSUMER.CREATE.<s>.<d>``, ``…CREATE.<s>.<d>.<filter>``,
  ``CONSUMER.DURABLE.CREATE.<s>.<d>``), and so is creating a consumer of another name; the durable keeps the filter
  the deployer gave it;
* the gateway, likewise, cannot widen its target durable;
* ``b`` fetching from ``a``'s durable is refused; fetch and ack on its own durable work;
* a worker (and a gateway) started before its durable exists stops with an error naming the stream and the
  durable and saying what to do, and creates nothing.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.js.api import ConsumerConfig
from secured_support import connect_as, deploy, secured_server

from kumeo_iac.compile import PlatformSettings, compile_program
from kumeo_iac.compile._security import DEPLOYER_USER
from kumeo_iac.jetstream import connect_options_from_env
from kumeo_iac.local._nats_server import NatsServer
from kumeo_iac.runtime._binding import ConsumerMissing
from kumeo_iac.runtime._worker import Worker
from kumeo_iac.runtime.io import Gateway, target_consumers
from kumeo_iac.spec import NATS, DataProcessor, FileTarget, HttpSource, Program, WorkflowSpec
from kumeo_providers import connect

pytestmark = [pytest.mark.nats, pytest.mark.timeout(90)]

SOURCE = "own.in"
ROOT = Path(__file__).resolve().parents[2]
PRODUCER = {"user": "producer", "password": "producer-pass-123",
            "permissions": {"publish": {"allow": [SOURCE, "$JS.API.>"]}, "subscribe": {"allow": ["_INBOX.>"]}}}


def _plan(out_file: Path) -> Any:
    """Agent ``a`` reads the NATS source, ``b`` reads ``a``'s output and writes a File target (a gateway durable)."""
    a = DataProcessor(id="a", input="source.feed")
    b = DataProcessor(id="b", input="a.output", output="target.sink")
    spec = WorkflowSpec(name="Own", sources=[NATS(SOURCE, id="feed"), HttpSource("/in", id="web")],
                        targets=[FileTarget(str(out_file), id="sink")], agents=[a, b])
    return compile_program(Program(workflows=[spec]), settings=PlatformSettings(nats_auth=True))


@pytest.fixture
def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with secured_server(_plan(tmp_path / "delivered.jsonl"), [PRODUCER], tmp_path, monkeypatch) as secured:
        yield secured


async def _deploy(url: str, plan: Any, passwords: dict[str, str], *, consumers: bool = True) -> None:
    """What the Workflow component does at `pulumi up`, as the deployer: streams, then every durable."""
    wf = plan.workflows[0]
    await deploy(url, plan, passwords, [*wf.consumers, *target_consumers(wf)] if consumers else [])


async def _refused(nc: Any, errors: list[str], subject: str, body: dict[str, Any]) -> None:
    """A JetStream API request the server must refuse: no reply, and a permissions violation naming the subject."""
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        await nc.request(subject, json.dumps(body).encode(), timeout=1)
    want = f'publish to "{subject.lower()}"'
    for _ in range(100):
        if any(want in e.lower() and "permissions violation" in e.lower() for e in errors):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no permissions violation for {subject}: {errors}")


async def _deployer_info(url: str, passwords: dict[str, str], stream: str, durable: str) -> Any:
    nc = await connect(url, user=DEPLOYER_USER, password=passwords[DEPLOYER_USER])
    try:
        return await nc.jetstream().consumer_info(stream, durable)
    finally:
        await nc.close()


async def _publish_source(url: str, payloads: list[dict[str, Any]]) -> None:
    nc = await nats.connect(url, user=PRODUCER["user"], password=PRODUCER["password"])
    try:
        for p in payloads:
            await nc.jetstream().publish(SOURCE, json.dumps(p).encode())
    finally:
        await nc.close()


async def test_an_agent_cannot_recreate_or_widen_its_durable_to_read_the_whole_workflow(secured):
    server, plan, passwords = secured
    await _deploy(server.url, plan, passwords)
    wf = plan.workflows[0]
    b = wf.agent("b")
    (consumer,) = b.consumers
    s, d = consumer.stream, consumer.durable
    wide = f"kumeo.{wf.slug}.>"
    config = {**consumer.config, "filter_subjects": [wide]}
    errors: list[str] = []
    nc = await connect_as(server.url, b.identity, passwords, errors)
    try:
        for subject, body in (
            (f"$JS.API.CONSUMER.CREATE.{s}.{d}", {"stream_name": s, "config": config, "action": ""}),
            (f"$JS.API.CONSUMER.CREATE.{s}.{d}", {"stream_name": s, "config": config, "action": "update"}),
            (f"$JS.API.CONSUMER.CREATE.{s}.{d}.{wide}",
             {"stream_name": s, "config": {**consumer.config, "filter_subject": wide, "filter_subjects": None}}),
            (f"$JS.API.CONSUMER.DURABLE.CREATE.{s}.{d}", {"stream_name": s, "config": config}),
            (f"$JS.API.CONSUMER.CREATE.{s}.spy", {"stream_name": s, "config": {
                **config, "durable_name": "spy", "name": "spy"}}),
            (f"$JS.API.CONSUMER.CREATE.{s}", {"stream_name": s, "config": {"filter_subject": wide}}),
        ):
            await _refused(nc, errors, subject, body)
        # nats.py's own call (whichever API form it picks) fails the same way
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await nc.jetstream().add_consumer(s, ConsumerConfig.from_response(config), timeout=1)
    finally:
        await nc.close()
    info = await _deployer_info(server.url, passwords, s, d)
    assert info.config.filter_subjects == list(consumer.config["filter_subjects"]) != [wide]
    with pytest.raises(nats.js.errors.NotFoundError):
        await _deployer_info(server.url, passwords, s, "spy")


async def test_the_gateway_cannot_widen_its_target_durable(secured):
    server, plan, passwords = secured
    await _deploy(server.url, plan, passwords)
    wf = plan.workflows[0]
    (target,) = target_consumers(wf)
    s, d = target.stream, target.durable
    wide = f"kumeo.{wf.slug}.>"
    errors: list[str] = []
    nc = await connect_as(server.url, wf.gateway_identity, passwords, errors)
    try:
        body = {"stream_name": s, "config": {**target.config, "filter_subject": wide}}
        await _refused(nc, errors, f"$JS.API.CONSUMER.CREATE.{s}.{d}", body)
        await _refused(nc, errors, f"$JS.API.CONSUMER.CREATE.{s}.{d}.{wide}", body)
        await _refused(nc, errors, f"$JS.API.CONSUMER.DURABLE.CREATE.{s}.{d}", body)
    finally:
        await nc.close()
    assert (await _deployer_info(server.url, passwords, s, d)).config.filter_subject == target.config["filter_subject"]


async def test_an_agent_fetches_and_acks_its_own_durable_and_is_refused_another_agents(secured):
    server, plan, passwords = secured
    await _deploy(server.url, plan, passwords)
    await _publish_source(server.url, [{"id": 1}])
    wf = plan.workflows[0]
    a, b = wf.agent("a"), wf.agent("b")
    (a_consumer,) = a.consumers
    (b_consumer,) = b.consumers

    # b may not pull from a's durable: the pull request is a refused publish, and nothing is delivered
    errors: list[str] = []
    nc = await connect_as(server.url, b.identity, passwords, errors)
    try:
        await _refused(nc, errors, f"$JS.API.CONSUMER.MSG.NEXT.{a_consumer.stream}.{a_consumer.durable}",
                       {"batch": 1, "expires": 500_000_000})
    finally:
        await nc.close()
    assert (await _deployer_info(server.url, passwords, a_consumer.stream, a_consumer.durable)).num_pending == 1

    # a fetches and acks on its own durable, and publishes its output for b
    errors = []
    nc = await connect_as(server.url, a.identity, passwords, errors)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe_bind(a_consumer.durable, a_consumer.stream)
        (msg,) = await sub.fetch(1, timeout=5)
        assert json.loads(msg.data) == {"id": 1}
        await js.publish(a.output_subject, msg.data, timeout=3)
        await msg.ack_sync(timeout=3)
    finally:
        await nc.close()
    assert errors == []
    info = await _deployer_info(server.url, passwords, a_consumer.stream, a_consumer.durable)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)

    # and b reads exactly that from its own durable
    nc = await connect_as(server.url, b.identity, passwords, errors)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe_bind(b_consumer.durable, b_consumer.stream)
        (msg,) = await sub.fetch(1, timeout=5)
        assert json.loads(msg.data) == {"id": 1} and msg.subject == a.output_subject
        await msg.ack_sync(timeout=3)
    finally:
        await nc.close()
    assert errors == []


async def test_a_worker_started_before_its_durable_exists_says_which_and_creates_nothing(secured):
    server, plan, passwords = secured
    await _deploy(server.url, plan, passwords, consumers=False)
    wf = plan.workflows[0]
    b = wf.agent("b")
    (consumer,) = b.consumers
    env = {"NATS_USER": b.identity.user, "NATS_PASSWORD": passwords[b.identity.user],
           "NATS_INBOX_PREFIX": b.identity.inbox_prefix}
    worker = Worker(wf, "b", server.url, connect_options=connect_options_from_env(env), fetch_expires=1.0)
    with pytest.raises(ConsumerMissing) as caught:
        await worker.start()
    await worker.stop()
    message = str(caught.value)
    assert f"worker Own/b: its durable consumer {consumer.durable!r} on stream {consumer.stream!r} does not " \
           "exist" in message
    assert "pulumi up" in message and "kumeo run" in message
    with pytest.raises(nats.js.errors.NotFoundError):
        await _deployer_info(server.url, passwords, consumer.stream, consumer.durable)

    # the worker process as a pod runs it: exit 1 and that one line on stderr, no traceback
    plan_file = server.store_dir.parent / "plan.json"
    plan_file.write_text(plan.to_json())
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "kumeo_iac.runtime", "--plan", str(plan_file), "--agent", "b", "--nats", server.url,
         "--health-port", "-1"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env}, cwd=str(ROOT), capture_output=True,
        timeout=60)
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert f"durable consumer {consumer.durable!r} on stream {consumer.stream!r} does not exist" in stderr
    assert "Traceback" not in stderr


async def test_a_gateway_started_before_its_target_durable_exists_says_which(secured):
    server, plan, passwords = secured
    await _deploy(server.url, plan, passwords, consumers=False)
    wf = plan.workflows[0]
    (target,) = target_consumers(wf)
    nc = await connect_as(server.url, wf.gateway_identity, passwords, [])
    gateway = Gateway(wf, server.store_dir.parent, http_host="127.0.0.1", http_port=0)
    try:
        with pytest.raises(ConsumerMissing) as caught:
            await gateway.start(nc)
    finally:
        await gateway.stop()
        await nc.close()
    assert caught.value.stream == target.stream and caught.value.durable == target.durable
    assert f"durable consumer {target.durable!r} on stream {target.stream!r} does not exist" in str(caught.value)


RUN = """
workflow Lost {
  source: NATS("lost.in")
  target: File("out/all.jsonl", id: "all")
  agents: [
    DataProcessor(id: "pass", input: source, output: "target.all")
  ]
}
"""


async def test_kumeo_run_as_the_deployer_restores_consumers_a_fresh_server_lost(tmp_path: Path) -> None:
    """Workers and the gateway cannot re-create what a server lost; `kumeo run` (the deployer) does on reconnect."""
    import shutil

    from kumeo_iac.local import LocalRunner
    from kumeo_iac.validate import load

    (tmp_path / "wf.kumeo").write_text(RUN)
    plan = compile_program(load(tmp_path / "wf.kumeo", strict_files=True), base_dir=tmp_path)
    server = NatsServer(store_dir=tmp_path / "js")
    server.start()
    try:
        runner = LocalRunner(plan, base_dir=tmp_path, nats_url=server.url)
        async with runner:
            await runner.publish("lost.in", [("e1", {"n": 1})])
            assert (await runner.drain(30)).drained
            server.stop()
            shutil.rmtree(tmp_path / "js")  # a server that comes back with nothing: no stream, no consumer
            server.start()
            wf = plan.workflows[0]
            durables = [(c.stream, c.durable) for c in [*wf.consumers, *target_consumers(wf)]]
            assert ("KUMEO_LOST", "gateway-target-all") in durables
            for _ in range(200):
                try:
                    for stream, durable in durables:
                        await runner.js.consumer_info(stream, durable)
                    break
                except Exception:  # noqa: BLE001 - not restored yet
                    await asyncio.sleep(0.05)
            for stream, durable in durables:
                assert (await runner.js.consumer_info(stream, durable)).name == durable
            await runner.publish("lost.in", [("e2", {"n": 2})])
            assert (await runner.drain(30)).drained
        lines = [json.loads(line) for line in (tmp_path / "out" / "all.jsonl").read_text().splitlines()]
        assert sorted(d["n"] for d in lines) == [1, 2]
    finally:
        server.cleanup()
