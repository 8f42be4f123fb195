"""The async core of kumeo_providers against a real nats-server: ensure_*, delete_*, find_* and connect."""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.js.api import (
    AckPolicy,
    DeliverPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from provider_support import orders_stream, scorer_consumer

from kumeo_iac.errors import KumeoDeployError
from kumeo_iac.jetstream import Outcome, apply_consumer, apply_key_value, apply_stream
from kumeo_iac.local._nats_server import NatsServer, free_port
from kumeo_providers import (
    connect,
    delete_consumer,
    delete_key_value,
    delete_stream,
    ensure_consumer,
    ensure_key_value,
    ensure_stream,
    find_consumer,
    find_key_value,
    find_stream,
    key_value_config_from_stream,
    with_jetstream,
)

pytestmark = [pytest.mark.nats, pytest.mark.timeout(30)]


@pytest.fixture
async def js(nats_url):
    nc = await connect(nats_url, timeout_s=5)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


# -- streams ----------------------------------------------------------------------------------------------------


async def test_ensure_stream_creates_then_is_idempotent(js):
    info, outcome = await apply_stream(js, orders_stream())
    assert outcome is Outcome.CREATED
    assert info.config.subjects == ["orders.>"] and info.config.max_msgs == 1000

    again, outcome = await apply_stream(js, orders_stream())
    assert outcome is Outcome.UNCHANGED
    assert again.created == info.created


async def test_ensure_stream_updates_mutable_fields_in_place_keeping_messages(js):
    await ensure_stream(js, orders_stream())
    await js.publish("orders.new", b"{}")

    info, outcome = await apply_stream(
        js, orders_stream(max_msgs=5000, description="all orders", subjects=["orders.>", "refunds.>"])
    )

    assert outcome is Outcome.UPDATED
    live = await js.stream_info("ORDERS")
    assert live.config.max_msgs == 5000
    assert live.config.description == "all orders"
    assert live.config.subjects == ["orders.>", "refunds.>"]
    assert live.state.messages == 1
    assert info.config.max_msgs == 5000


async def test_ensure_stream_refuses_an_immutable_change_with_a_deploy_error(js):
    await ensure_stream(js, orders_stream())
    with pytest.raises(KumeoDeployError, match=r"ORDERS.*storage.*replace"):
        await ensure_stream(js, orders_stream(storage=StorageType.MEMORY))
    with pytest.raises(KumeoDeployError, match="workqueue"):
        await ensure_stream(js, orders_stream(retention=RetentionPolicy.WORK_QUEUE))


async def test_delete_stream_and_find_stream(js):
    await ensure_stream(js, orders_stream())
    assert (await find_stream(js, "ORDERS")) is not None
    assert await delete_stream(js, "ORDERS") is True
    assert await find_stream(js, "ORDERS") is None
    assert await delete_stream(js, "ORDERS") is False


async def test_a_stream_without_a_name_is_a_deploy_error(js):
    with pytest.raises(KumeoDeployError, match="needs a name"):
        await ensure_stream(js, StreamConfig(subjects=["x"]))


# -- consumers --------------------------------------------------------------------------------------------------


async def test_ensure_consumer_creates_a_durable_pull_consumer_then_is_idempotent(js):
    await ensure_stream(js, orders_stream())
    _, outcome = await apply_consumer(js, "ORDERS", scorer_consumer())
    assert outcome is Outcome.CREATED
    live = await js.consumer_info("ORDERS", "scorer")
    assert live.config.durable_name == "scorer"
    assert live.config.ack_policy == AckPolicy.EXPLICIT
    assert live.config.max_deliver == 4
    assert live.config.backoff == [12.0, 15.0, 20.0]
    assert live.config.filter_subject == "orders.new"
    assert live.config.deliver_subject is None  # pull

    _, outcome = await apply_consumer(js, "ORDERS", scorer_consumer())
    assert outcome is Outcome.UNCHANGED


async def test_ensure_consumer_updates_max_deliver_backoff_and_filter_in_place(js):
    await ensure_stream(js, orders_stream())
    await ensure_consumer(js, "ORDERS", scorer_consumer())

    _, outcome = await apply_consumer(
        js, "ORDERS", scorer_consumer(max_deliver=6, backoff=[12.0, 30.0], filter_subject="orders.paid")
    )

    assert outcome is Outcome.UPDATED
    live = await js.consumer_info("ORDERS", "scorer")
    assert (live.config.max_deliver, live.config.backoff) == (6, [12.0, 30.0])
    assert live.config.filter_subject == "orders.paid"


async def test_ensure_consumer_refuses_an_immutable_change_naming_the_consumer(js):
    await ensure_stream(js, orders_stream())
    await ensure_consumer(js, "ORDERS", scorer_consumer())
    with pytest.raises(KumeoDeployError, match=r"ORDERS/scorer.*deliver policy.*replace"):
        await ensure_consumer(js, "ORDERS", scorer_consumer(deliver_policy=DeliverPolicy.NEW))


async def test_ensure_consumer_on_a_missing_stream_is_a_deploy_error(js):
    with pytest.raises(KumeoDeployError, match="NOPE/scorer"):
        await ensure_consumer(js, "NOPE", scorer_consumer())


async def test_delete_consumer_and_find_consumer(js):
    await ensure_stream(js, orders_stream())
    await ensure_consumer(js, "ORDERS", scorer_consumer())
    assert await find_consumer(js, "ORDERS", "scorer") is not None
    assert await delete_consumer(js, "ORDERS", "scorer") is True
    assert await find_consumer(js, "ORDERS", "scorer") is None
    assert await delete_consumer(js, "ORDERS", "scorer") is False
    assert await delete_consumer(js, "NO_STREAM", "scorer") is False


# -- key-value buckets ------------------------------------------------------------------------------------------


async def test_ensure_key_value_creates_then_is_idempotent(js):
    info, outcome = await apply_key_value(js, KeyValueConfig(bucket="joins", history=3, ttl=60.0))
    assert outcome is Outcome.CREATED
    config = key_value_config_from_stream(info.config)
    assert (config.bucket, config.history, config.ttl) == ("joins", 3, 60.0)

    _, outcome = await apply_key_value(js, KeyValueConfig(bucket="joins", history=3, ttl=60.0))
    assert outcome is Outcome.UNCHANGED


async def test_ensure_key_value_updates_history_and_ttl_keeping_keys(js):
    await ensure_key_value(js, KeyValueConfig(bucket="joins", history=3, ttl=60.0))
    kv = await js.key_value("joins")
    await kv.put("order-1", b"half")

    _, outcome = await apply_key_value(
        js, KeyValueConfig(bucket="joins", history=5, ttl=300.0, description="join state")
    )

    assert outcome is Outcome.UPDATED
    status = await (await js.key_value("joins")).status()
    assert (status.history, status.ttl) == (5, 300.0)
    assert status.stream_info.config.description == "join state"
    assert (await kv.get("order-1")).value == b"half"


async def test_delete_key_value_and_find_key_value(js):
    await ensure_key_value(js, KeyValueConfig(bucket="cache"))
    assert await find_key_value(js, "cache") is not None
    assert await delete_key_value(js, "cache") is True
    assert await find_key_value(js, "cache") is None
    assert await delete_key_value(js, "cache") is False


# -- connecting -------------------------------------------------------------------------------------------------


async def test_connect_to_a_dead_port_fails_within_the_bound_naming_the_url():
    url = f"nats://127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(KumeoDeployError) as info:
        await connect(url, timeout_s=1.0)
    elapsed = time.monotonic() - began
    assert url in str(info.value)
    assert "last error: ConnectionRefusedError" in str(info.value)
    assert elapsed < 3.0


async def test_connect_retries_until_the_server_comes_up():
    server = NatsServer()
    try:
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, server.start)
        began = time.monotonic()
        nc = await connect(server.url, timeout_s=10.0)
        assert nc.is_connected
        assert time.monotonic() - began >= 0.4
        await nc.close()
    finally:
        server.cleanup()


async def test_connect_fails_at_once_on_wrong_credentials(tmp_path):
    config = tmp_path / "auth.conf"
    config.write_text('authorization { token: "s3cret" }\n')
    with NatsServer(config_file=config) as server:
        nc = await connect(server.url, token="s3cret", timeout_s=5)
        await nc.close()
        began = time.monotonic()
        with pytest.raises(KumeoDeployError, match=r"refused the connection.*credentials"):
            await connect(server.url, token="wrong", timeout_s=10)
        assert time.monotonic() - began < 5


async def test_a_server_without_jetstream_is_named_as_such():
    server = NatsServer()
    # Starting the binary by hand without -js: the one server shape our NatsServer never produces.
    import subprocess

    port = free_port()
    process = subprocess.Popen(
        [str(server.command()[0]), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        nc = await connect(f"nats://127.0.0.1:{port}", timeout_s=5)
        try:
            with pytest.raises(KumeoDeployError, match="-js"):
                await ensure_stream(nc.jetstream(timeout=2), orders_stream())
        finally:
            await nc.close()
    finally:
        process.terminate()
        process.wait(timeout=5)
        server.cleanup()


async def test_with_jetstream_closes_the_connection_after_the_action(nats_url):
    seen = {}

    async def action(js):
        seen["js"] = js
        return await ensure_stream(js, orders_stream())

    info = await with_jetstream(nats_url, action, timeout_s=5)
    assert info.config.name == "ORDERS"
    assert seen["js"]._nc.is_closed
