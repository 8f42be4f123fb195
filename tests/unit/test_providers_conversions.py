"""kumeo_providers without a server: config <-> wire-shaped inputs, check and diff rules, and picklability."""

from __future__ import annotations

import base64
import subprocess
import sys

import dill
import pytest
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    Placement,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamConsumerLimits,
    StreamSource,
)
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.rpc import UNKNOWN

import kumeo_providers
from kumeo_providers import (
    CONSUMER_REPLACE_FIELDS,
    STREAM_REPLACE_FIELDS,
    ConfigFieldError,
    ConsumerProvider,
    KeyValueProvider,
    StreamProvider,
    consumer_config_from_inputs,
    consumer_config_to_inputs,
    key_value_config_from_inputs,
    key_value_config_to_inputs,
    stream_config_from_inputs,
    stream_config_to_inputs,
)

pytestmark = pytest.mark.timeout(30)

SECOND = 1_000_000_000
URL = "nats://127.0.0.1:4222"


def test_a_stream_config_becomes_the_wire_shape_and_back():
    config = StreamConfig(
        name="ORDERS",
        subjects=["orders.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.MEMORY,
        max_age=3.5,
        duplicate_window=120.0,
        placement=Placement(tags=["ssd"]),
        consumer_limits=StreamConsumerLimits(inactive_threshold=30.0, max_ack_pending=10),
        metadata={"team": "fraud"},
    )
    inputs = stream_config_to_inputs(config)
    assert inputs["storage"] == "memory" and inputs["retention"] == "limits"
    assert inputs["max_age"] == 3_500_000_000 and inputs["duplicate_window"] == 120 * SECOND
    assert inputs["placement"] == {"tags": ["ssd"]}
    assert inputs["consumer_limits"] == {"inactive_threshold": 30 * SECOND, "max_ack_pending": 10}
    assert None not in inputs.values()
    assert inputs == config.as_dict() | {"storage": "memory", "retention": "limits", "discard": "old"}

    back = stream_config_from_inputs(inputs)
    assert back.storage is StorageType.MEMORY and back.retention is RetentionPolicy.LIMITS
    assert back.max_age == 3.5 and back.duplicate_window == 120.0
    assert back.placement == Placement(tags=["ssd"])
    assert back.consumer_limits == StreamConsumerLimits(inactive_threshold=30.0, max_ack_pending=10)
    assert stream_config_to_inputs(back) == inputs


def test_engine_floats_become_ints_where_the_wire_needs_ints_and_unknown_keys_are_ignored():
    inputs = {
        "name": "ORDERS",
        "subjects": ["orders.>"],
        "max_msgs": 1000.0,
        "max_age": 60e9,
        "sources": [{"name": "UPSTREAM", "opt_start_seq": 5.0}],
        "from_a_newer_server": True,
        "description": None,
    }
    config = stream_config_from_inputs(inputs)
    assert config.max_msgs == 1000 and isinstance(config.max_msgs, int)
    assert config.max_age == 60.0
    assert config.sources == [StreamSource(name="UPSTREAM", opt_start_seq=5)]
    assert isinstance(config.sources[0].opt_start_seq, int)
    assert config.description is None
    assert stream_config_to_inputs(config)["max_msgs"] == 1000
    assert inputs["max_msgs"] == 1000.0  # the caller's dict is left alone


def test_a_consumer_config_round_trips_with_backoff_in_nanoseconds():
    config = ConsumerConfig(
        durable_name="scorer",
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=12.0,
        max_deliver=4,
        backoff=[12.0, 15.0],
        filter_subjects=["orders.new", "orders.paid"],
    )
    inputs = consumer_config_to_inputs(config)
    assert inputs["backoff"] == [12 * SECOND, 15 * SECOND] and inputs["ack_wait"] == 12 * SECOND
    back = consumer_config_from_inputs({**inputs, "max_deliver": 4.0, "backoff": [12e9, 15e9]})
    assert (back.ack_wait, back.backoff, back.max_deliver) == (12.0, [12.0, 15.0], 4)
    assert consumer_config_to_inputs(back) == inputs


def test_a_key_value_config_round_trips_with_ttl_in_nanoseconds():
    config = KeyValueConfig(bucket="joins", history=3, ttl=60.0, storage=StorageType.FILE, limit_marker_ttl=5.0)
    inputs = key_value_config_to_inputs(config)
    assert inputs == {
        "bucket": "joins",
        "history": 3,
        "ttl": 60 * SECOND,
        "storage": "file",
        "replicas": 1,
        "limit_marker_ttl": 5 * SECOND,
    }
    assert key_value_config_from_inputs({**inputs, "history": 3.0, "replicas": 1.0}) == config


@pytest.mark.parametrize(
    ("inputs", "field", "words"),
    [
        ({"name": "S", "storage": "disk"}, "config.storage", "'file', 'memory'"),
        ({"name": "S", "max_msgs": 2.5}, "config.max_msgs", "integer"),
        ({"name": "S", "max_age": "1h"}, "config.max_age", "nanoseconds"),
        ({"name": "S", "subjects": "orders.>"}, "config.subjects", "list"),
        ({"name": "S", "sealed": "yes"}, "config.sealed", "true or false"),
        ({"name": "S", "placement": {"tags": [1]}}, "config.placement.tags[0]", "string"),
    ],
)
def test_a_malformed_value_names_its_field(inputs, field, words):
    with pytest.raises(ConfigFieldError) as info:
        stream_config_from_inputs(inputs)
    assert info.value.field == field
    assert words in str(info.value)


def test_a_key_value_config_without_a_bucket_says_so():
    with pytest.raises(ConfigFieldError, match="missing required field.*bucket"):
        key_value_config_from_inputs({"history": 2})


def test_the_replace_lists_hold_what_the_server_refuses_to_change():
    assert {"name", "storage", "first_seq"} <= STREAM_REPLACE_FIELDS
    assert "max_msgs" not in STREAM_REPLACE_FIELDS and "subjects" not in STREAM_REPLACE_FIELDS
    assert {"durable_name", "deliver_policy", "ack_policy", "replay_policy", "opt_start_seq"} <= CONSUMER_REPLACE_FIELDS
    assert not {"max_deliver", "backoff", "ack_wait", "filter_subject"} & CONSUMER_REPLACE_FIELDS


@pytest.mark.parametrize(
    ("old", "new", "replaced"),
    [
        ({"sealed": True}, {"sealed": False}, True),
        ({"sealed": False}, {"sealed": True}, False),
        ({"deny_delete": True}, {}, True),
        ({}, {"mirror": {"name": "UP"}}, True),
        ({"mirror": {"name": "UP"}}, {}, False),
        ({"retention": "limits"}, {"retention": "interest"}, False),
        ({"retention": "interest"}, {"retention": "workqueue"}, True),
        ({}, {"storage": "file"}, False),
        ({}, {"storage": "memory"}, True),
    ],
)
def test_stream_diff_rules(old, new, replaced):
    provider = StreamProvider()
    base = {"name": "S", "subjects": ["s.>"]}
    diff = provider.diff(
        "S", {"server_url": URL, "config": {**base, **old}}, {"server_url": URL, "config": {**base, **new}}
    )
    assert bool(diff.replaces) is replaced


def test_unknown_values_during_a_preview_pass_check_and_replace_conservatively():
    provider = StreamProvider()
    news = {"server_url": UNKNOWN, "config": {"name": "S", "subjects": [UNKNOWN], "storage": UNKNOWN}}
    result = provider.check({}, news)
    assert result.failures == []
    diff = provider.diff("S", {"server_url": URL, "config": {"name": "S", "subjects": ["s.>"]}}, news)
    assert diff.changes is True
    assert set(diff.replaces) == {"server_url", "config.storage", "config.subjects"}


def test_consumer_push_to_pull_is_a_replacement_but_a_new_deliver_subject_is_not():
    provider = ConsumerProvider()
    old = {"server_url": URL, "stream": "S", "config": {"durable_name": "d", "deliver_subject": "a"}}
    assert provider.diff("S/d", old, {**old, "config": {"durable_name": "d", "deliver_subject": "b"}}).replaces == []
    assert provider.diff("S/d", old, {**old, "config": {"durable_name": "d"}}).replaces == ["config.deliver_subject"]


def test_credential_changes_update_without_replacing():
    provider = KeyValueProvider()
    old = {"server_url": URL, "config": {"bucket": "b"}, "token": "one"}
    diff = provider.diff("b", old, {**old, "token": "two"})
    assert diff.changes is True and diff.replaces == []


@pytest.mark.parametrize("provider_type", [StreamProvider, ConsumerProvider, KeyValueProvider])
def test_providers_survive_pulumis_dill_serialisation(provider_type):
    serialized = serialize_provider(provider_type())
    restored = dill.loads(base64.b64decode(serialized))
    assert type(restored) is provider_type
    assert vars(restored) == {}


def test_the_async_core_imports_without_pulumi():
    code = (
        "import sys, kumeo_providers\n"
        "from kumeo_providers import ensure_stream, connect\n"
        "assert 'pulumi' not in sys.modules, 'kumeo_providers imported pulumi'\n"
        "from kumeo_providers import Stream\n"
        "assert 'pulumi' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_package_exports_what_it_lists():
    for name in kumeo_providers.__all__:
        assert getattr(kumeo_providers, name) is not None
    with pytest.raises(AttributeError):
        kumeo_providers.NotAThing  # noqa: B018
