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
from pulumi.runtime.rpc import UNKNOWN, _special_secret_sig, _special_sig_key

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
    with pytest.raises(ConfigFieldError, match=r"missing required field.*bucket"):
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
        "S",
        {"server_url": URL, "config": {**base, **old}},
        {"server_url": URL, "config": {**base, **new}, "allow_replace": True},
    )
    assert bool(diff.replaces) is replaced
    assert diff.changes is True or not replaced


def test_unknown_values_during_a_preview_pass_check_and_never_replace():
    provider = StreamProvider()
    olds = {"server_url": URL, "config": {"name": "S", "subjects": ["s.>"], "storage": "file"}}
    news = {"server_url": UNKNOWN, "token": UNKNOWN,
            "config": {"name": "S", "subjects": [UNKNOWN], "storage": UNKNOWN}}
    result = provider.check(olds, news)
    assert result.failures == []
    diff = provider.diff("S", olds, news)
    assert diff.changes is True
    assert diff.replaces == []  # known at `up`, where a real change is refused or replaces


def test_a_whole_config_unknown_during_a_preview_is_a_change_not_a_replacement():
    provider = StreamProvider()
    olds = {"server_url": URL, "config": {"name": "S", "subjects": ["s.>"], "storage": "file"}}
    diff = provider.diff("S", olds, {"server_url": URL, "config": UNKNOWN})
    assert diff.changes is True and diff.replaces == []


@pytest.mark.parametrize(
    "change",
    [
        {"server_url": "nats://localhost:4222"},
        {"server_url": "tls://nats.example:4222", "tls_ca_file": "/etc/ca.crt"},
        {"token": "new"},
        {"user": "deployer", "password": "pw"},
        {"creds_file": "/run/deployer.creds"},
        {"tls_cert_file": "/etc/tls.crt", "tls_key_file": "/etc/tls.key"},
        {"connect_timeout_s": 30.0},
    ],
)
@pytest.mark.parametrize("provider_type", [StreamProvider, KeyValueProvider, ConsumerProvider])
def test_connection_details_are_never_identity(provider_type, change):
    provider = provider_type()
    config = {"name": "S", "subjects": ["s.>"]} if provider_type is StreamProvider else (
        {"bucket": "b"} if provider_type is KeyValueProvider else {"durable_name": "d"})
    olds = {"server_url": URL, "token": "old", "stream": "S", "config": config}
    diff = provider.diff("x", olds, {**olds, **change})
    assert diff.changes is True and diff.replaces == []


def test_control_inputs_alone_are_no_change():
    provider = StreamProvider()
    olds = {"server_url": URL, "config": {"name": "S", "subjects": ["s.>"]}}
    diff = provider.diff("S", olds, {**olds, "adopt": True, "allow_replace": True})
    assert diff.changes is False and diff.replaces == []


@pytest.mark.parametrize("provider_type", [StreamProvider, KeyValueProvider, ConsumerProvider])
def test_the_provider_stored_in_clear_where_the_state_has_it_secret_is_no_change(provider_type):
    # Stacks deployed before the provider was registered in clear hold it as a secret in their state.
    provider = provider_type()
    config = {"name": "S", "subjects": ["s.>"]} if provider_type is StreamProvider else (
        {"bucket": "b"} if provider_type is KeyValueProvider else {"durable_name": "d"})
    serialized = serialize_provider(provider)
    news = {"server_url": URL, "stream": "S", "config": config, "__provider": serialized}
    olds = {**news, "__provider": {_special_sig_key: _special_secret_sig, "value": serialized}}
    diff = provider.diff("x", olds, news)
    assert diff.changes is False and diff.replaces == []


def test_a_consumer_follows_a_real_stream_change_only():
    provider = ConsumerProvider()
    old = {"server_url": URL, "stream": "S", "stream_created": "2025-01-01T00:00:00+00:00",
           "config": {"durable_name": "d"}}
    # During a preview the stream's outputs are often unknown: a possible change, never a replacement.
    unknown = provider.diff("S/d", old, {**old, "stream": UNKNOWN, "stream_created": UNKNOWN})
    assert unknown.changes is True and unknown.replaces == []
    assert provider.diff("S/d", old, {**old, "stream": "T"}).replaces == ["stream"]
    recreated = provider.diff("S/d", old, {**old, "stream_created": "2025-06-01T00:00:00+00:00"})
    assert recreated.replaces == ["stream_created"]
    # A state from before streams reported `created`: learning it is no replacement.
    legacy = {k: v for k, v in old.items() if k != "stream_created"}
    assert provider.diff("S/d", legacy, old).replaces == []
    # A consumer holds no messages: its replacements are never refused.
    assert provider.diff("S/d", old, {**old, "config": {"durable_name": "d", "deliver_policy": "new"}}).replaces == [
        "config.deliver_policy"
    ]


def test_a_stream_replacement_is_refused_at_check_and_diff_naming_stream_field_and_values():
    provider = StreamProvider()
    # Nothing listens on this port: the refusal cannot count the messages and says so, within the short timeout.
    olds = {"server_url": "nats://127.0.0.1:9", "connect_timeout_s": 0.2,
            "config": {"name": "KUMEO_FRAUD", "subjects": ["fraud.>"], "storage": "file"}}
    news = {**olds, "config": {**olds["config"], "storage": "memory"}}
    failures = provider.check(olds, news).failures
    assert len(failures) == 1 and failures[0].property == ""
    reason = failures[0].reason
    assert reason.startswith("stream KUMEO_FRAUD: changing storage from file to memory replaces the stream")
    assert "every one of its stored messages" in reason
    assert "allow_replace (kumeo:allowStreamReplacement)" in reason
    with pytest.raises(kumeo_providers.ReplacementRefusedError, match="storage from file to memory"):
        provider.diff("KUMEO_FRAUD", olds, news)
    assert provider.check(olds, {**news, "allow_replace": True}).failures == []
    assert provider.diff("KUMEO_FRAUD", olds, {**news, "allow_replace": True}).replaces == ["config.storage"]
    assert provider.check({}, news).failures == []  # a create replaces nothing


def test_a_bucket_replacement_is_refused_like_a_streams():
    provider = KeyValueProvider()
    olds = {"server_url": "nats://127.0.0.1:9", "connect_timeout_s": 0.2, "config": {"bucket": "reviews"}}
    news = {**olds, "config": {"bucket": "reviews", "storage": "memory"}}
    (failure,) = provider.check(olds, news).failures
    assert failure.reason.startswith(
        "key-value bucket reviews: changing storage from file to memory replaces the bucket and deletes"
    )


def test_consumer_push_to_pull_is_a_replacement_but_a_new_deliver_subject_is_not():
    provider = ConsumerProvider()
    old = {"server_url": URL, "stream": "S", "config": {"durable_name": "d", "deliver_subject": "a"}}
    assert provider.diff("S/d", old, {**old, "config": {"durable_name": "d", "deliver_subject": "b"}}).replaces == []
    assert provider.diff("S/d", old, {**old, "config": {"durable_name": "d"}}).replaces == ["config.deliver_subject"]


def test_check_rejects_a_client_certificate_without_its_key_and_non_boolean_switches():
    provider = StreamProvider()
    news = {"server_url": URL, "tls_cert_file": "/etc/tls.crt", "adopt": "yes",
            "config": {"name": "S", "subjects": ["s.>"]}}
    reasons = {f.property: f.reason for f in provider.check({}, news).failures}
    assert "tls_key_file" in reasons["tls_key_file"]
    assert "true or false" in reasons["adopt"]


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
