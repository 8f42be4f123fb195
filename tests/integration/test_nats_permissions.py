"""Per-agent NATS identities enforced by a real nats-server started with ``render_nats_config``'s output.

The workflow is compiled (not hand-built), so the permissions under test are exactly what the Plan gives: agent
``a`` reads the source through its consumer and publishes ``a.out``; agent ``b`` reads ``a.out``. The deployer
(``kumeo-deployer``) creates the streams and consumers, as ``pulumi up`` does. The server runs with JetStream
encryption at rest (key from ``$JETSTREAM_KEY``).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import nats
import nats.errors
import pytest
from secured_support import ENCRYPTION_KEY, connect_as, deploy, secured_server

from kumeo_iac.compile import (
    PlatformSettings,
    compile_program,
)
from kumeo_iac.compile._security import DEPLOYER_USER, inbox_prefix
from kumeo_iac.errors import KumeoDeployError
from kumeo_iac.jetstream import connect_options_from_env
from kumeo_iac.runtime._worker import Worker
from kumeo_iac.spec import NATS, DataProcessor, Program, Ref, WorkflowSpec
from kumeo_providers import connect

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]

SOURCE = "perm.in"
READER = {"user": "reader", "password": "reader-pass-123",
          "permissions": {"publish": {"allow": [SOURCE, "$JS.API.>"]}, "subscribe": {"allow": ["_INBOX.>"]}}}
MARKER = "plaintext-marker-7f3a9c"


def _plan():
    a = DataProcessor(id="a", input=Ref(path=("source",)))
    b = DataProcessor(id="b", input=Ref(path=("a", "output")))
    spec = WorkflowSpec(name="Perm", source=NATS(SOURCE), agents=[a, b])
    return compile_program(Program(workflows=[spec]), settings=PlatformSettings(nats_auth=True))


@pytest.fixture
def secured(tmp_path: Path, monkeypatch):
    """A nats-server running the generated config (users, encryption at rest), the Plan and the passwords."""
    with secured_server(_plan(), [READER], tmp_path, monkeypatch) as secured:
        yield secured


async def _wait_for(predicate, timeout: float = 3.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def _count(url: str, stream: str, subject: str) -> int:
    nc = await nats.connect(url, user=READER["user"], password=READER["password"])
    try:
        info = await nc.jetstream().stream_info(stream, subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))
    finally:
        await nc.close()


async def _publish_source(url: str, payloads: list[dict]) -> None:
    nc = await nats.connect(url, user=READER["user"], password=READER["password"])
    try:
        js = nc.jetstream()
        for p in payloads:
            await js.publish(SOURCE, json.dumps(p).encode())
    finally:
        await nc.close()


async def test_an_agent_consumes_its_consumer_and_publishes_its_output(secured):
    server, plan, passwords = secured
    await deploy(server.url, plan, passwords)
    await _publish_source(server.url, [{"id": 1, "note": MARKER}])
    wf = plan.workflows[0]
    a = wf.agent("a")
    (consumer,) = a.consumers
    errors: list[str] = []
    nc = await connect_as(server.url, plan.workflows[0].agent("a").identity, passwords, errors)
    try:
        js = nc.jetstream()
        info = await js.consumer_info(consumer.stream, consumer.durable)
        assert info.num_pending == 1
        sub = await js.pull_subscribe_bind(consumer.durable, consumer.stream, inbox_prefix=(
            inbox_prefix(a.identity.user) + ".").encode())
        (msg,) = await sub.fetch(1, timeout=3)
        assert json.loads(msg.data)["note"] == MARKER
        await msg.ack_sync()
        ack = await js.publish(a.output_subject, msg.data, timeout=3)
        assert ack.stream == consumer.stream or ack.stream.startswith("KUMEO_PERM")
    finally:
        await nc.close()
    assert errors == []
    assert await _count(server.url, "KUMEO_PERM", a.output_subject) == 1


async def test_an_agent_is_refused_another_agents_output_consumer_inbox_and_input_subject(secured):
    server, plan, passwords = secured
    await deploy(server.url, plan, passwords)
    wf = plan.workflows[0]
    b = wf.agent("b")
    (b_consumer,) = b.consumers
    errors: list[str] = []
    nc = await connect_as(server.url, plan.workflows[0].agent("a").identity, passwords, errors)
    try:
        js = nc.jetstream()
        # nats-py reports the server's "Permissions Violation" errors to error_cb, lower-cased.
        # 1. publishing on b's output subject: the server refuses it, the publish is never stored
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await js.publish(b.output_subject, b"{}", timeout=1)
        assert await _wait_for(lambda: any(f'publish to "{b.output_subject}"' in e.lower() for e in errors)), errors
        assert "permissions violation" in errors[0].lower()
        assert await _count(server.url, "KUMEO_PERM", b.output_subject) == 0

        # 2. fetching from b's consumer: the pull request itself is a refused publish
        api = f"$JS.API.CONSUMER.MSG.NEXT.{b_consumer.stream}.{b_consumer.durable}"
        with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
            await nc.request(api, b'{"batch": 1}', timeout=1)
        assert await _wait_for(lambda: any(f'publish to "{api.lower()}"' in e.lower() for e in errors)), errors
        with pytest.raises((TimeoutError, nats.errors.Error)):  # refused: no reply
            await js.consumer_info(b_consumer.stream, b_consumer.durable, timeout=1)

        # 3. tapping b's inbox, or the source subject directly, is a refused subscription
        await nc.subscribe(inbox_prefix(b.identity.user) + ".>")
        await nc.subscribe(SOURCE)
        await nc.flush()
        assert await _wait_for(lambda: sum("subscription to" in e.lower() for e in errors) >= 2), errors
    finally:
        await nc.close()


async def test_wrong_password_and_unknown_user_are_refused(secured):
    server, plan, _ = secured
    user = plan.workflows[0].agent("a").identity.user
    with pytest.raises(KumeoDeployError, match="refused"):
        await connect(server.url, user=user, password="not-the-password", timeout_s=3)
    with pytest.raises(KumeoDeployError, match="refused"):
        await connect(server.url, timeout_s=3)  # no credentials at all


async def test_deployer_manages_objects_but_cannot_read_messages(secured):
    server, plan, passwords = secured
    await deploy(server.url, plan, passwords)
    await _publish_source(server.url, [{"id": 1}])
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await connect(server.url, user=DEPLOYER_USER, password=passwords[DEPLOYER_USER], error_cb=on_error)
    try:
        js = nc.jetstream()
        stream = plan.workflows[0].agent("a").consumers[0].stream
        assert (await js.stream_info(stream)).state.messages == 1
        with pytest.raises((TimeoutError, nats.errors.Error)):  # refused: no reply
            await js.get_msg(stream, 1)
        assert await _wait_for(
            lambda: any("stream.msg.get" in e.lower() or "direct.get" in e.lower() for e in errors)), errors
    finally:
        await nc.close()


async def test_encryption_at_rest_round_trips_and_keeps_no_plaintext_on_disk(secured):
    server, plan, passwords = secured
    await deploy(server.url, plan, passwords)
    await _publish_source(server.url, [{"id": i, "note": MARKER} for i in range(20)])
    server.restart()  # the data comes back only if the server can decrypt its own store
    nc = await nats.connect(server.url, user=READER["user"], password=READER["password"])
    try:
        js = nc.jetstream()
        stream = plan.workflows[0].agent("a").consumers[0].stream
        msg = await js.get_msg(stream, 1)
        assert json.loads(msg.data)["note"] == MARKER
    finally:
        await nc.close()
    stored = b"".join(p.read_bytes() for p in server.store_dir.rglob("*") if p.is_file())
    assert stored, "the store directory is empty"
    assert MARKER.encode() not in stored


async def test_the_real_worker_runs_with_its_own_credentials(secured, monkeypatch):
    server, plan, passwords = secured
    await deploy(server.url, plan, passwords)
    wf = plan.workflows[0]
    a = wf.agent("a")
    env = {"NATS_USER": a.identity.user, "NATS_PASSWORD": passwords[a.identity.user],
           "NATS_INBOX_PREFIX": a.identity.inbox_prefix}
    worker = Worker(wf, "a", server.url, connect_options=connect_options_from_env(env), fetch_expires=1.0,
                    lag_interval=0.5)
    async with worker:
        await _publish_source(server.url, [{"id": i} for i in range(5)])
        deadline = asyncio.get_running_loop().time() + 10
        while await _count(server.url, "KUMEO_PERM", a.output_subject) < 5:
            assert asyncio.get_running_loop().time() < deadline, "the worker produced nothing"
            await asyncio.sleep(0.1)
        assert worker.is_ready()
    assert await _count(server.url, "KUMEO_PERM", a.dead_letter_subject) == 0


def test_the_nats_server_rejects_nothing_in_the_generated_config(secured):
    server, _, _ = secured
    assert server.is_running
    assert "error" not in server.read_log().lower().replace("errors", "")
    assert os.environ.get("JETSTREAM_KEY") == ENCRYPTION_KEY
