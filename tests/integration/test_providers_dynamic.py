"""The Pulumi dynamic providers driven directly (check, diff, create, read, update, delete) against a real server.

No Pulumi engine runs here (there is no Pulumi CLI on this machine): each test calls the provider the way the
engine would, with inputs in the shape the engine hands over (ints turned into floats, as mocks and state do).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from provider_support import as_engine_sends, checked, on_server, orders_stream, scorer_consumer

from kumeo_iac.errors import KumeoDeployError
from kumeo_iac.local._nats_server import free_port
from kumeo_providers import (
    AlreadyExistsError,
    ConsumerProvider,
    KeyValueProvider,
    ReplacementRefusedError,
    StreamProvider,
    consumer_config_to_inputs,
    key_value_config_to_inputs,
    stream_config_to_inputs,
)

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]

SECOND = 1_000_000_000




def with_config(inputs: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**inputs, "config": {**inputs["config"], **changes}}


# -- streams ----------------------------------------------------------------------------------------------------


@pytest.fixture
def stream_inputs(nats_url) -> dict[str, Any]:
    config = orders_stream(max_age=3600)
    return {"server_url": nats_url, "config": stream_config_to_inputs(config)}


def test_stream_create_makes_the_stream_with_its_config(nats_url, stream_inputs):
    provider = StreamProvider()
    inputs = checked(provider, stream_inputs)
    assert inputs["config"]["max_msgs"] == 1000 and isinstance(inputs["config"]["max_msgs"], int)

    result = provider.create(inputs)

    assert result.id == "ORDERS"
    assert result.outs["name"] == "ORDERS"
    assert result.outs["server_url"] == nats_url
    assert result.outs["config"] == inputs["config"]
    assert result.outs["live_config"]["duplicate_window"] == 120 * SECOND  # the server's default, seen live
    live = on_server(nats_url, lambda js: js.stream_info("ORDERS"))
    assert live.config.subjects == ["orders.>"]
    assert live.config.max_msgs == 1000
    assert live.config.max_age == 3600.0
    assert live.config.storage == StorageType.FILE


def test_stream_mutable_changes_are_updates_visible_on_the_server(nats_url, stream_inputs):
    provider = StreamProvider()
    created = provider.create(checked(provider, stream_inputs))
    news = checked(
        provider,
        with_config(stream_inputs, max_msgs=5000, description="every order", subjects=["orders.>", "refunds.>"]),
    )

    diff = provider.diff(created.id, created.outs, news)
    assert diff.changes is True
    assert diff.replaces == []

    updated = provider.update(created.id, created.outs, news)

    live = on_server(nats_url, lambda js: js.stream_info("ORDERS"))
    assert live.config.max_msgs == 5000
    assert live.config.description == "every order"
    assert live.config.subjects == ["orders.>", "refunds.>"]
    assert updated.outs["config"]["max_msgs"] == 5000
    assert provider.diff(created.id, updated.outs, news).changes is False


def test_stream_immutable_changes_are_replacements_when_allowed(stream_inputs):
    provider = StreamProvider()
    created = provider.create(checked(provider, stream_inputs))
    allowed = {**stream_inputs, "allow_replace": True}

    storage = provider.diff(created.id, created.outs, checked(provider, with_config(allowed, storage="memory")))
    assert storage.replaces == ["config.storage"]
    assert storage.delete_before_replace is True

    to_interest = provider.diff(
        created.id, created.outs, checked(provider, with_config(stream_inputs, retention="interest"))
    )
    assert to_interest.changes is True and to_interest.replaces == []
    to_workqueue = provider.diff(
        created.id, created.outs, checked(provider, with_config(allowed, retention="workqueue"))
    )
    assert to_workqueue.replaces == ["config.retention"]

    renamed = provider.diff(created.id, created.outs, checked(provider, with_config(allowed, name="ORDERS2")))
    assert renamed.replaces == ["config.name"]

    # The URL says where to reach the stream, not which stream it is.
    moved = provider.diff(created.id, created.outs, {**created.outs, "server_url": "nats://elsewhere:4222"})
    assert moved.changes is True and moved.replaces == []


def test_stream_diff_sees_no_change_in_engine_floats_or_spelled_out_defaults(stream_inputs):
    provider = StreamProvider()
    created = provider.create(checked(provider, stream_inputs))
    same = as_engine_sends(with_config(stream_inputs, retention="limits", max_consumers=-1))
    diff = provider.diff(created.id, created.outs, same)
    assert diff.changes is False and diff.replaces == []


def test_stream_read_refreshes_from_the_server_and_shows_drift(nats_url, stream_inputs):
    provider = StreamProvider()
    inputs = checked(provider, stream_inputs)
    created = provider.create(inputs)

    fresh = provider.read(created.id, created.outs)
    assert fresh.id == "ORDERS"
    assert fresh.outs["config"] == inputs["config"]
    assert provider.diff(created.id, fresh.outs, inputs).changes is False

    # Someone edits the stream by hand: refresh sees it and the next `up` puts it back.
    on_server(
        nats_url,
        lambda js: js.update_stream(StreamConfig(name="ORDERS", subjects=["orders.>"], max_msgs=7, max_age=3600)),
    )
    drifted = provider.read(created.id, created.outs)
    assert drifted.outs["config"]["max_msgs"] == 7
    assert drifted.inputs["config"]["max_msgs"] == 7
    back = provider.diff(created.id, drifted.outs, inputs)
    assert back.changes is True and back.replaces == []

    on_server(nats_url, lambda js: js.delete_stream("ORDERS"))
    assert provider.read(created.id, created.outs).id == ""


def test_stream_delete_removes_it_and_is_idempotent(nats_url, stream_inputs):
    provider = StreamProvider()
    created = provider.create(checked(provider, stream_inputs))

    provider.delete(created.id, created.outs)

    names = on_server(nats_url, lambda js: js.streams_info())
    assert [s.config.name for s in names if s.config.name != "KUMEO_AUDIT"] == []  # the audit trail stays
    provider.delete(created.id, created.outs)


def test_stream_create_adopts_an_existing_identical_stream_only_when_asked(nats_url, stream_inputs):
    provider = StreamProvider()
    inputs = checked(provider, stream_inputs)
    on_server(
        nats_url,
        lambda js: js.add_stream(StreamConfig(name="ORDERS", subjects=["orders.>"], max_msgs=1000, max_age=3600)),
    )
    with pytest.raises(AlreadyExistsError, match=r"stream ORDERS already exists on nats://127\.0\.0\.1:\d+"):
        provider.create(inputs)
    result = provider.create({**inputs, "adopt": True})
    assert result.outs["live_config"]["max_msgs"] == 1000


def test_stream_check_reports_every_problem_with_its_field(nats_url):
    provider = StreamProvider()
    result = provider.check(
        {},
        {
            "server_url": "http://127.0.0.1:4222",
            "config": {"name": "bad.name", "storage": "disk", "max_msg": 5, "max_msgs": "many", "max_age": "1h"},
        },
    )
    reasons = {f.property: f.reason for f in result.failures}
    assert "server_url" in reasons and "nats://" in reasons["server_url"]
    assert "'file'" in reasons["config.storage"] and "'memory'" in reasons["config.storage"]
    assert "did you mean 'max_msgs'" in reasons["config.max_msg"]
    assert "integer" in reasons["config.max_msgs"]
    assert "nanoseconds" in reasons["config.max_age"]

    semantic = provider.check({}, {"server_url": nats_url, "config": {"name": "bad.name"}})
    reasons = {f.property: f.reason for f in semantic.failures}
    assert "'.'" in reasons["config.name"]
    assert "subjects" in reasons["config.subjects"]

    missing = provider.check({}, {"config": None})
    assert {f.property for f in missing.failures} == {"server_url", "config"}


def test_stream_create_against_a_dead_server_fails_within_the_bound_naming_it(stream_inputs):
    provider = StreamProvider()
    url = f"nats://127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(KumeoDeployError, match=url):
        provider.create({**checked(provider, stream_inputs), "server_url": url, "connect_timeout_s": 1.0})
    assert time.monotonic() - began < 4


# -- consumers --------------------------------------------------------------------------------------------------


@pytest.fixture
def consumer_inputs(nats_url, stream_inputs) -> dict[str, Any]:
    StreamProvider().create(checked(StreamProvider(), stream_inputs))
    config = scorer_consumer(max_ack_pending=100)
    return {"server_url": nats_url, "stream": "ORDERS", "config": consumer_config_to_inputs(config)}


def test_consumer_create_makes_a_durable_pull_consumer(nats_url, consumer_inputs):
    provider = ConsumerProvider()
    result = provider.create(checked(provider, consumer_inputs))

    assert result.id == "ORDERS/scorer"
    assert (result.outs["stream"], result.outs["durable"], result.outs["name"]) == ("ORDERS", "scorer", "scorer")
    live = on_server(nats_url, lambda js: js.consumer_info("ORDERS", "scorer"))
    assert live.config.durable_name == "scorer"
    assert live.config.ack_policy == AckPolicy.EXPLICIT
    assert live.config.max_deliver == 4
    assert live.config.backoff == [12.0, 15.0, 20.0]
    assert live.config.filter_subject == "orders.new"
    assert live.config.max_ack_pending == 100
    assert live.config.deliver_subject is None


def test_consumer_mutable_changes_are_updates_visible_on_the_server(nats_url, consumer_inputs):
    provider = ConsumerProvider()
    created = provider.create(checked(provider, consumer_inputs))
    news = checked(
        provider,
        with_config(consumer_inputs, max_deliver=6, backoff=[12 * SECOND, 30 * SECOND], filter_subject="orders.paid"),
    )

    diff = provider.diff(created.id, created.outs, news)
    assert diff.changes is True and diff.replaces == []
    provider.update(created.id, created.outs, news)

    live = on_server(nats_url, lambda js: js.consumer_info("ORDERS", "scorer"))
    assert live.config.max_deliver == 6
    assert live.config.backoff == [12.0, 30.0]
    assert live.config.filter_subject == "orders.paid"


def test_consumer_immutable_changes_are_replacements(consumer_inputs):
    provider = ConsumerProvider()
    created = provider.create(checked(provider, consumer_inputs))

    deliver = provider.diff(
        created.id, created.outs, checked(provider, with_config(consumer_inputs, deliver_policy="new"))
    )
    assert deliver.replaces == ["config.deliver_policy"]
    ack = provider.diff(created.id, created.outs, checked(provider, with_config(consumer_inputs, ack_policy="all")))
    assert ack.replaces == ["config.ack_policy"]
    durable = provider.diff(
        created.id, created.outs, checked(provider, with_config(consumer_inputs, durable_name="other"))
    )
    assert durable.replaces == ["config.durable_name"]
    stream = provider.diff(created.id, created.outs, {**created.outs, "stream": "OTHER"})
    assert stream.replaces == ["stream"]
    to_push = provider.diff(
        created.id, created.outs, checked(provider, with_config(consumer_inputs, deliver_subject="deliver.here"))
    )
    assert to_push.replaces == ["config.deliver_subject"]


def test_consumer_read_shows_no_false_drift_when_backoff_overrides_ack_wait(consumer_inputs):
    provider = ConsumerProvider()
    inputs = checked(provider, consumer_inputs)
    created = provider.create(inputs)
    assert created.outs["live_config"]["ack_wait"] == 12 * SECOND

    fresh = provider.read(created.id, created.outs)

    assert fresh.id == "ORDERS/scorer"
    assert fresh.outs["config"]["ack_wait"] == inputs["config"]["ack_wait"]
    assert provider.diff(created.id, fresh.outs, inputs).changes is False


def test_consumer_delete_removes_it_even_after_its_stream_is_gone(nats_url, consumer_inputs):
    provider = ConsumerProvider()
    created = provider.create(checked(provider, consumer_inputs))

    provider.delete(created.id, created.outs)

    assert on_server(nats_url, lambda js: js.consumers_info("ORDERS")) == []
    on_server(nats_url, lambda js: js.delete_stream("ORDERS"))
    provider.delete(created.id, created.outs)
    assert provider.read(created.id, created.outs).id == ""


def test_consumer_check_needs_a_durable_name_a_stream_and_enough_deliveries(nats_url):
    provider = ConsumerProvider()
    result = provider.check(
        {},
        {
            "server_url": nats_url,
            "config": consumer_config_to_inputs(ConsumerConfig(max_deliver=2, backoff=[1.0, 2.0, 3.0])),
        },
    )
    reasons = {f.property: f.reason for f in result.failures}
    assert "durable" in reasons["config.durable_name"]
    assert "max_deliver" in reasons["config.backoff"]
    assert "stream" in reasons


# -- key-value buckets ------------------------------------------------------------------------------------------


@pytest.fixture
def kv_inputs(nats_url) -> dict[str, Any]:
    config = KeyValueConfig(bucket="joins", history=3, ttl=60.0, storage=StorageType.FILE)
    return {"server_url": nats_url, "config": key_value_config_to_inputs(config)}


def test_key_value_create_makes_the_bucket(nats_url, kv_inputs):
    provider = KeyValueProvider()
    result = provider.create(checked(provider, kv_inputs))

    assert result.id == "joins"
    assert (result.outs["bucket"], result.outs["stream"]) == ("joins", "KV_joins")
    status = on_server(nats_url, lambda js: _kv_status(js, "joins"))
    assert (status.history, status.ttl) == (3, 60.0)


async def _kv_status(js, bucket):
    return await (await js.key_value(bucket)).status()


def test_key_value_history_and_ttl_changes_are_updates(nats_url, kv_inputs):
    provider = KeyValueProvider()
    created = provider.create(checked(provider, kv_inputs))
    news = checked(provider, with_config(kv_inputs, history=10, ttl=600 * SECOND, description="join state"))

    diff = provider.diff(created.id, created.outs, news)
    assert diff.changes is True and diff.replaces == []
    updated = provider.update(created.id, created.outs, news)

    status = on_server(nats_url, lambda js: _kv_status(js, "joins"))
    assert (status.history, status.ttl) == (10, 600.0)
    assert updated.outs["live_config"]["description"] == "join state"
    fresh = provider.read(created.id, updated.outs)
    assert provider.diff(created.id, fresh.outs, news).changes is False


def test_key_value_storage_and_bucket_changes_are_replacements_when_allowed(kv_inputs):
    provider = KeyValueProvider()
    created = provider.create(checked(provider, kv_inputs))
    allowed = {**kv_inputs, "allow_replace": True}
    storage = provider.diff(created.id, created.outs, checked(provider, with_config(allowed, storage="memory")))
    assert storage.replaces == ["config.storage"]
    bucket = provider.diff(created.id, created.outs, checked(provider, with_config(allowed, bucket="other")))
    assert bucket.replaces == ["config.bucket"]
    with pytest.raises(ReplacementRefusedError, match="key-value bucket joins: changing storage from file to memory"):
        provider.diff(created.id, created.outs, checked(provider, with_config(kv_inputs, storage="memory")))


def test_key_value_delete_removes_the_bucket(nats_url, kv_inputs):
    provider = KeyValueProvider()
    created = provider.create(checked(provider, kv_inputs))
    provider.delete(created.id, created.outs)
    streams = on_server(nats_url, lambda js: js.streams_info())
    assert [s.config.name for s in streams if s.config.name != "KUMEO_AUDIT"] == []  # the audit trail stays
    assert provider.read(created.id, created.outs).id == ""


def test_key_value_check_rejects_bad_names_and_history(nats_url):
    provider = KeyValueProvider()
    result = provider.check({}, {"server_url": nats_url, "config": {"bucket": "no.dots", "history": 65}})
    reasons = {f.property: f.reason for f in result.failures}
    assert "letters, digits" in reasons["config.bucket"]
    assert "64" in reasons["config.history"]
    missing = provider.check({}, {"server_url": nats_url, "config": {"history": 2}})
    assert "bucket" in missing.failures[0].reason
