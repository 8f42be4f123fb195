"""Stream, Consumer and KeyValue registered under Pulumi mocks.

Mocks stand in for the Pulumi engine because no Pulumi CLI exists on this machine: they record what each resource
registers (type token, inputs) without running the providers; the providers themselves are exercised against a
real nats-server in tests/integration/test_providers_dynamic.py.
"""

from __future__ import annotations

import asyncio
import base64

import dill
import pulumi
import pytest
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

from kumeo_providers import (
    CONSUMER_TYPE,
    KEY_VALUE_TYPE,
    LEGACY_DYNAMIC_TYPE,
    STREAM_TYPE,
    Consumer,
    ConsumerArgs,
    ConsumerProvider,
    KeyValue,
    KeyValueArgs,
    Stream,
    StreamArgs,
    StreamProvider,
)

pytestmark = pytest.mark.timeout(60)

URL = "nats://nats.bus:4222"
SECOND = 1_000_000_000


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers every registration with its inputs plus the outputs a provider would add."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        state = dict(args.inputs)
        config = state.get("config") or {}
        name = config.get("name") or config.get("durable_name") or config.get("bucket")
        state.update({"name": name, "live_config": config})
        if "durable_name" in config:
            state["durable"] = config["durable_name"]
        if "bucket" in config:
            state.update({"bucket": name, "stream": f"KV_{name}"})
        if "subjects" in config:
            state["created"] = "2025-01-31T12:00:00+00:00"
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}, None

    def registered(self, name: str) -> pulumi.runtime.MockResourceArgs:
        (match,) = [r for r in self.resources if r.name == name]
        return match


class RecordingMonitor(MockMonitor):
    """The mock engine's monitor, keeping every registration request (mocks see no resource options)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.requests: dict[str, object] = {}

    def RegisterResource(self, request):
        self.requests[request.name] = request
        return super().RegisterResource(request)


@pytest.fixture
def mocks():
    # A fresh loop of our own: pytest-asyncio closes the default one, and Pulumi's mocks need a usable loop.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    recorder = RecordingMocks()
    recorder.monitor = RecordingMonitor(recorder)
    pulumi.runtime.set_mocks(recorder, project="kumeo", stack="test", preview=False, monitor=recorder.monitor)
    try:
        yield recorder
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def provider_of(resource: pulumi.runtime.MockResourceArgs):
    serialized = resource.inputs["__provider"]
    if is_rpc_secret(serialized):
        serialized = unwrap_rpc_secret(serialized)
    return dill.loads(base64.b64decode(serialized))


@pulumi.runtime.test
def test_a_stream_registers_as_a_dynamic_resource_with_its_config(mocks):
    stream = Stream(
        "orders",
        StreamArgs(
            config=StreamConfig(name="ORDERS", subjects=["orders.>"], storage=StorageType.FILE, max_age=3600),
            server_url=URL,
            password="s3cret",
            user="deployer",
        ),
    )

    def check(values):
        name, config = values
        registered = mocks.registered("orders")
        assert registered.typ == STREAM_TYPE == "pulumi-python:dynamic/jetstream:Stream"
        assert registered.inputs["server_url"] == URL
        assert registered.inputs["config"]["name"] == "ORDERS"
        assert registered.inputs["config"]["subjects"] == ["orders.>"]
        assert registered.inputs["config"]["storage"] == "file"
        assert registered.inputs["config"]["max_age"] == 3600 * SECOND
        assert is_rpc_secret(registered.inputs["password"])  # credentials travel as Pulumi secrets
        assert unwrap_rpc_secret(registered.inputs["password"]) == "s3cret"
        assert isinstance(provider_of(registered), StreamProvider)
        assert name == "ORDERS"
        # What the engine hands back: ints as floats, which the providers turn back into ints.
        assert isinstance(config["max_age"], float)

    return pulumi.Output.all(stream.name, stream.config).apply(check)


@pulumi.runtime.test
def test_a_consumer_takes_its_stream_from_the_streams_output(mocks):
    stream = Stream("orders", {"config": {"name": "ORDERS", "subjects": ["orders.>"]}, "server_url": URL})
    consumer = Consumer(
        "scorer",
        ConsumerArgs(
            stream=stream.name,
            config=ConsumerConfig(
                durable_name="scorer",
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=12.0,
                max_deliver=4,
                backoff=[12.0, 15.0],
                filter_subject="orders.new",
            ),
            server_url=URL,
        ),
    )

    def check(values):
        durable, stream_name = values
        registered = mocks.registered("scorer")
        assert registered.typ == CONSUMER_TYPE == "pulumi-python:dynamic/jetstream:Consumer"
        assert registered.inputs["stream"] == "ORDERS"
        assert registered.inputs["config"]["durable_name"] == "scorer"
        assert registered.inputs["config"]["ack_policy"] == "explicit"
        assert registered.inputs["config"]["backoff"] == [12 * SECOND, 15 * SECOND]
        assert isinstance(provider_of(registered), ConsumerProvider)
        assert (durable, stream_name) == ("scorer", "ORDERS")

    return pulumi.Output.all(consumer.durable, consumer.stream).apply(check)


@pulumi.runtime.test
def test_a_key_value_bucket_registers_with_history_and_ttl(mocks):
    bucket = KeyValue("joins", KeyValueArgs(config=KeyValueConfig(bucket="joins", history=5, ttl=60.0), server_url=URL))

    def check(values):
        name, stream = values
        registered = mocks.registered("joins")
        assert registered.typ == KEY_VALUE_TYPE == "pulumi-python:dynamic/jetstream:KeyValue"
        assert registered.inputs["config"] == {"bucket": "joins", "history": 5, "ttl": 60 * SECOND, "replicas": 1}
        assert (name, stream) == ("joins", "KV_joins")

    return pulumi.Output.all(bucket.name, bucket.stream).apply(check)


@pulumi.runtime.test
def test_a_plan_dict_in_wire_shape_is_accepted_as_is(mocks):
    plan_config = ConsumerConfig(durable_name="explain", ack_wait=40.0, max_deliver=3).as_dict()
    consumer = Consumer(
        "explain",
        {
            "stream": "KUMEO_DEMO",
            "config": {k: getattr(v, "value", v) for k, v in plan_config.items()},
            "server_url": URL,
        },
    )

    def check(durable):
        registered = mocks.registered("explain")
        assert registered.inputs["config"]["ack_wait"] == 40 * SECOND
        assert durable == "explain"

    return consumer.durable.apply(check)


@pulumi.runtime.test
def test_every_jetstream_resource_keeps_an_alias_to_the_type_existing_stacks_recorded(mocks):
    """Stacks deployed before the readable types recorded ``pulumi-python:dynamic:Resource``; the alias lets the
    engine find them under the new type instead of replacing (deleting) their streams."""
    stream = Stream("orders", {"config": {"name": "ORDERS", "subjects": ["orders.>"]}, "server_url": URL})
    consumer = Consumer("scorer", {"stream": stream.name, "stream_created": stream.created, "server_url": URL,
                                   "config": {"durable_name": "scorer"}})
    bucket = KeyValue("joins", {"config": {"bucket": "joins"}, "server_url": URL},
                      opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="old-joins")]))

    def check(_):
        stack, project = pulumi.get_stack(), pulumi.get_project()
        for name in ("orders", "scorer", "joins"):
            urns = [alias.urn for alias in mocks.monitor.requests[name].aliases if alias.urn]
            # same name, same (no) parent: only the type differs, written as the URN the engine recorded
            assert urns == [f"urn:pulumi:{stack}::{project}::{LEGACY_DYNAMIC_TYPE}::{name}"], (name, urns)
        names = [alias.spec.name for alias in mocks.monitor.requests["joins"].aliases if not alias.urn]
        assert names == ["old-joins"]  # the caller's own aliases are kept

    return pulumi.Output.all(stream.name, consumer.durable, bucket.name).apply(check)


class _Parent(pulumi.ComponentResource):
    def __init__(self, name: str, parent: pulumi.Resource | None = None) -> None:
        super().__init__("kumeo:test:Parent", name, {}, pulumi.ResourceOptions(parent=parent))


@pulumi.runtime.test
def test_a_jetstream_resource_under_a_component_keeps_its_legacy_urn_with_the_parents_qualified_type(mocks):
    parent = _Parent("wf")
    stream = Stream("orders", {"config": {"name": "ORDERS", "subjects": ["orders.>"]}, "server_url": URL},
                    opts=pulumi.ResourceOptions(parent=parent))

    def check(parent_urn):
        # The parent's qualified type is read off its URN (the engine leaves the stack's type out of it; Pulumi's
        # mock monitor keeps it in), then this resource's old type and its name.
        qualified_type = parent_urn.rsplit("::", 1)[0]
        assert qualified_type.endswith("kumeo:test:Parent")
        urns = [alias.urn for alias in mocks.monitor.requests["orders"].aliases]
        assert urns == [f"{qualified_type}${LEGACY_DYNAMIC_TYPE}::orders"]

    return pulumi.Output.all(parent.urn, stream.name).apply(lambda values: check(values[0]))


@pulumi.runtime.test
def test_under_a_component_whose_urn_is_remembered_the_legacy_alias_is_the_string_the_engine_would_build(mocks):
    from kumeo_providers import remember_urn

    outer = _Parent("outer")
    assert remember_urn(outer, "kumeo:test:Parent", "outer", None) == (
        f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::kumeo:test:Parent::outer")
    inner = _Parent("inner", parent=outer)
    assert remember_urn(inner, "kumeo:test:Parent", "inner", outer) is not None
    stream = Stream("orders", {"config": {"name": "ORDERS", "subjects": ["orders.>"]}, "server_url": URL},
                    opts=pulumi.ResourceOptions(parent=inner))
    unknown_parent = _Parent("theirs")
    assert remember_urn(_Parent("under-theirs", parent=unknown_parent), "kumeo:test:Parent", "under-theirs",
                        unknown_parent) is None  # a parent nobody remembered: its URN is not known here

    def check(_):
        # The engine's URN: no stack type in it (Pulumi's mock monitor puts one in its own URNs), the parents'
        # types joined by "$", then the old type and the name.
        urns = [alias.urn for alias in mocks.monitor.requests["orders"].aliases]
        assert urns == [f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::"
                        f"kumeo:test:Parent$kumeo:test:Parent${LEGACY_DYNAMIC_TYPE}::orders"]

    return stream.name.apply(check)


@pulumi.runtime.test
def test_adopt_and_allow_replace_reach_the_provider_and_a_consumer_follows_its_streams_creation(mocks):
    stream = Stream("orders", StreamArgs(config={"name": "ORDERS", "subjects": ["orders.>"]}, server_url=URL,
                                         adopt=True, allow_replace=True))
    consumer = Consumer("scorer", ConsumerArgs(stream=stream.name, stream_created=stream.created, server_url=URL,
                                               config={"durable_name": "scorer"}, adopt=True))
    bucket = KeyValue("joins", KeyValueArgs(config={"bucket": "joins"}, server_url=URL))

    def check(_):
        assert mocks.registered("orders").inputs["adopt"] is True
        assert mocks.registered("orders").inputs["allow_replace"] is True
        assert mocks.registered("scorer").inputs["adopt"] is True
        assert "allow_replace" not in mocks.registered("scorer").inputs  # consumers are always replaceable
        # Left off, they are left out: the provider reads a missing one as false (one Output less per resource)
        assert {"adopt", "allow_replace"}.isdisjoint(mocks.registered("joins").inputs)
        dependencies = mocks.monitor.requests["scorer"].propertyDependencies
        assert list(dependencies["stream_created"].urns) == list(dependencies["stream"].urns) != []

    return pulumi.Output.all(consumer.durable, bucket.name, stream.urn).apply(check)


@pulumi.runtime.test
def test_the_component_adapter_passes_adopt_and_allow_replace_and_ties_consumers_to_their_stream(mocks):
    from kumeo_iac.compile._plan import ConsumerPlan, KeyValuePlan, StreamPlan
    from kumeo_iac.components import _jetstream

    opts = pulumi.ResourceOptions()
    stream = _jetstream.stream("wf-stream-S", StreamPlan("S", "internal", {"name": "S", "subjects": ["s.>"]}), URL,
                               opts, adopt=True, allow_replace=True)
    consumer = _jetstream.consumer("wf-consumer-S-d", ConsumerPlan("S", "d", "a", {"durable_name": "d"}), URL, opts,
                                   stream=stream, adopt=True, allow_replace=True)
    bucket = _jetstream.key_value("wf-kv-b", KeyValuePlan("b", "joins", {"bucket": "b"}), URL, opts)

    def check(values):
        stream_urn = values[2]
        streams = mocks.registered("wf-stream-S")
        assert (streams.typ, streams.inputs["adopt"], streams.inputs["allow_replace"]) == (STREAM_TYPE, True, True)
        consumers = mocks.registered("wf-consumer-S-d")
        assert consumers.typ == CONSUMER_TYPE
        assert (consumers.inputs["stream"], consumers.inputs["adopt"]) == ("S", True)
        assert consumers.inputs["stream_created"] == "2025-01-31T12:00:00+00:00"  # the stream's `created` output
        # The stream's name is the Plan's string; its `created` Output is what makes the consumer wait for it.
        dependencies = mocks.monitor.requests["wf-consumer-S-d"].propertyDependencies
        assert list(dependencies["stream_created"].urns) == [stream_urn]
        buckets = mocks.registered("wf-kv-b")
        assert buckets.typ == KEY_VALUE_TYPE
        assert {"adopt", "allow_replace"}.isdisjoint(buckets.inputs)

    return pulumi.Output.all(consumer.durable, bucket.name, stream.urn).apply(check)


@pulumi.runtime.test
def test_every_output_resolves_and_the_provider_is_registered_in_clear_holding_nothing_secret(mocks):
    # The outputs are getters (the SDK caches their types per class; annotations it would resolve per resource).
    stream = Stream("orders", StreamArgs(config=StreamConfig(name="ORDERS", subjects=["orders.>"]), server_url=URL))
    consumer = Consumer("scorer", ConsumerArgs(stream=stream.name, stream_created=stream.created, server_url=URL,
                                               config=ConsumerConfig(durable_name="scorer")))
    bucket = KeyValue("joins", KeyValueArgs(config=KeyValueConfig(bucket="joins"), server_url=URL, token="s3cret"))
    outputs = [stream.name, stream.created, stream.server_url, stream.config, stream.live_config,
               consumer.name, consumer.stream, consumer.durable, consumer.server_url, consumer.config["durable_name"],
               consumer.live_config["durable_name"], bucket.name, bucket.bucket, bucket.stream, bucket.server_url,
               bucket.config["bucket"], bucket.live_config["bucket"]]

    def check(values):
        assert values[0:3] == ["ORDERS", "2025-01-31T12:00:00+00:00", URL]
        assert values[3]["name"] == values[4]["name"] == "ORDERS"
        assert values[5:11] == ["scorer", "ORDERS", "scorer", URL, "scorer", "scorer"]
        assert values[11:] == ["joins", "joins", "KV_joins", URL, "joins", "joins"]
        for name in ("orders", "scorer", "joins"):
            registered = mocks.registered(name)
            # The provider is a bare class reference: sent in clear, while the credentials stay secret.
            assert not is_rpc_secret(registered.inputs["__provider"]), name
            assert provider_of(registered).__dict__ == {}, name
        assert is_rpc_secret(mocks.registered("joins").inputs["token"])

    return pulumi.Output.all(*outputs).apply(check)
