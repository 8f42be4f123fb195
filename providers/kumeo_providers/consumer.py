"""The durable JetStream consumer as a Pulumi resource: ``Consumer(name, ConsumerArgs(stream=..., config=...))``.

Which changes replace the consumer (delete, then create: its delivery and ack state restart from the deliver
policy) and which update it in place follows nats-server's ``checkNewConsumerConfig`` (``server/consumer.go``),
verified against nats-server 2.15. A consumer holds no messages, only its position in the stream, so a replacement
is allowed without ``allow_replace``: the new consumer delivers again from its deliver policy (``all``: every message
still in the stream, which the agents see as redeliveries). The connection inputs (``server_url``, credentials, TLS
files) are never identity: changing them is an update that reconnects.

Replaced — the server refuses to change them on a live consumer:
  * ``durable_name`` / ``name``
  * ``stream`` — only a real change of name: during a preview the name of a managed stream is often not known yet,
    and that is no replacement
  * ``stream_created`` — the stream was deleted and created again (its ``created`` output changed), taking the
    consumer with it on the server
  * ``deliver_policy``, ``opt_start_seq``, ``opt_start_time`` (where delivery starts)
  * ``ack_policy``, ``replay_policy``
  * ``idle_heartbeat``, ``flow_control`` (push consumers)
  * ``max_waiting`` (pull consumers), ``mem_storage``
  * ``deliver_subject`` set or cleared (pull ↔ push); changing it between two subjects is an update

Everything else is updated in place: ``ack_wait``, ``max_deliver``, ``backoff``, ``filter_subject(s)`` (since
nats-server 2.10), ``description``, ``max_ack_pending``, ``rate_limit_bps``, ``sample_freq``, ``headers_only``,
``inactive_threshold``, ``num_replicas``, ``metadata``, ``pause_until``, ….

``create`` of a durable that already exists fails unless the input ``adopt`` is true; then it is taken over and
updated, or deleted and created again when it differs in a field above. Kumeo's workers and gateway never create a
consumer (their NATS identities may not): they bind to the one this resource creates and wait while it is missing.

A lane consumer of a partitioned agent (one reading a partition stream) is not deleted while it still has pending or
unacknowledged events: no pod would read them again (:class:`~kumeo_providers._lanes.UndrainedLanesError`).

Note that when ``backoff`` is set the server uses its first step as the ack wait and reports ``ack_wait`` as that
value; the desired ``ack_wait`` is kept as written so a refresh does not show a false drift.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import pulumi
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from pulumi.dynamic import CheckFailure, CheckResult

from kumeo_iac.jetstream import (
    Outcome,
    apply_consumer,
    consumer_config_from_inputs,
    consumer_config_to_inputs,
    delete_consumer,
    find_consumer,
)
from kumeo_providers._lanes import UndrainedLanesError, lane_backlog, undrained_message
from kumeo_providers._provider import (
    ConnectionArgs,
    JetStreamProvider,
    JetStreamResource,
    Live,
    Replacement,
    announce,
    connection_props,
    contains_unknown,
    control_props,
    jetstream_options,
    name_failures,
    run_sync,
    unwrap,
)
from kumeo_providers._types import JETSTREAM_MODULE

__all__ = ["CONSUMER_REPLACE_FIELDS", "Consumer", "ConsumerArgs", "ConsumerProvider"]

# Fields whose every change replaces the consumer.
CONSUMER_REPLACE_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "durable_name",
        "deliver_policy",
        "opt_start_seq",
        "opt_start_time",
        "ack_policy",
        "replay_policy",
        "idle_heartbeat",
        "flow_control",
        "max_waiting",
        "mem_storage",
    }
)


class ConsumerProvider(JetStreamProvider):
    """Creates, updates, reads and deletes one durable JetStream consumer (a Pulumi dynamic provider)."""

    kind = "consumer"
    noun = "consumer"
    config_type = ConsumerConfig
    guards_data = False  # its position only: replacing it is always allowed
    identity_inputs = ("stream", "stream_created")
    extra_input_keys = ("stream", "stream_created")
    server_defaults: ClassVar[Mapping[str, Any]] = {
        "opt_start_seq": 0,
        "flow_control": False,
        "mem_storage": False,
        "headers_only": False,
        "max_waiting": 512,
        "max_deliver": -1,
        "num_replicas": 0,
        "deliver_subject": "",
    }
    zero_means_server_default = frozenset({"ack_wait", "idle_heartbeat", "inactive_threshold"})

    def replaces_on_change(self, field: str, old: Any, new: Any) -> bool:
        if field in CONSUMER_REPLACE_FIELDS:
            return True
        if field == "deliver_subject":
            return bool(old) != bool(new)
        return False

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        result = super().check(olds, news)
        stream = unwrap(news.get("stream"))
        if not contains_unknown(stream):
            result.failures.extend(name_failures(stream, "stream", "stream"))
        return result

    def check_config(self, config: ConsumerConfig, inputs: Mapping[str, Any]) -> list[CheckFailure]:
        failures = name_failures(config.durable_name, "config.durable_name", "durable consumer")
        if config.name and config.durable_name and config.name != config.durable_name:
            failures.append(
                CheckFailure("config.name", f"name {config.name!r} must equal durable_name {config.durable_name!r}")
            )
        if config.backoff and config.max_deliver is not None and 0 < config.max_deliver < len(config.backoff):
            failures.append(
                CheckFailure(
                    "config.backoff",
                    f"backoff has {len(config.backoff)} steps but max_deliver is {config.max_deliver}; "
                    "raise max_deliver to at least the number of steps (or -1 for unlimited)",
                )
            )
        if config.ack_wait is not None and config.ack_wait <= 0:
            failures.append(
                CheckFailure("config.ack_wait", f"expected a positive number of seconds, got {config.ack_wait}")
            )
        return failures

    def resource_id(self, inputs: Mapping[str, Any]) -> str:
        return f"{inputs['stream']}/{self._durable(inputs)}"

    def display_name(self, inputs: Mapping[str, Any]) -> str:
        return f"{unwrap(inputs.get('stream'))}/{self._durable(inputs)}"

    def identity_outputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        durable = self._durable(inputs)
        return {"stream": inputs["stream"], "durable": durable, "name": durable}

    def project_field(self, field: str, desired: Any, live: Mapping[str, Any]) -> Any:
        if field == "ack_wait" and live.get("backoff"):
            return desired  # the server reports backoff[0] here
        if field == "num_replicas" and not live.get("num_replicas"):
            return desired  # 0 means "as many as the stream"
        return super().project_field(field, desired, live)

    async def apply(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> tuple[Live, Outcome]:
        info, outcome = await apply_consumer(js, inputs["stream"], consumer_config_from_inputs(inputs["config"]))
        return Live(consumer_config_to_inputs(info.config)), outcome

    async def fetch(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> Live | None:
        info = await find_consumer(js, inputs["stream"], self._durable(inputs))
        return None if info is None else Live(consumer_config_to_inputs(info.config))

    async def remove(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> None:
        await delete_consumer(js, inputs["stream"], self._durable(inputs))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        inputs = self._inputs(props)
        stream, durable = str(inputs["stream"]), self._durable(inputs)
        held = run_sync(lambda: self._with_js(inputs, lambda js: lane_backlog(js, stream, durable)))
        if held:
            raise UndrainedLanesError(undrained_message(f"delete lane consumer {stream}/{durable}", held))
        super().delete(_id, props)

    async def adopt_conflicting(
        self, js: JetStreamContext, inputs: Mapping[str, Any], existing: Live, conflicts: list[Replacement]
    ) -> None:
        """A consumer holds only its position: adopting one that differs where it cannot be updated replaces it."""
        announce(
            f"adopting consumer {self.display_name(inputs)}: changing "
            + ", ".join(r.describe() for r in conflicts)
            + " needs a new consumer, so it is deleted and created again (delivery restarts from its deliver policy)",
            warning=True,
        )
        await self.remove(js, inputs)

    @staticmethod
    def _durable(inputs: Mapping[str, Any]) -> str:
        config = inputs["config"]
        return str(config.get("durable_name") or config.get("name"))


@dataclasses.dataclass(kw_only=True)
class ConsumerArgs(ConnectionArgs):
    """The inputs of a :class:`Consumer`: its stream, its nats-py ConsumerConfig and the NATS server.

    Pass ``stream=my_stream.name`` and ``stream_created=my_stream.created`` (outputs) rather than plain values, so
    Pulumi creates the stream first and replaces the consumer whenever the stream is created again. ``adopt``: take
    over a durable that already exists on the server (otherwise creating the resource fails).
    """

    stream: pulumi.Input[str]
    config: ConsumerConfig | Mapping[str, Any] | pulumi.Input[Mapping[str, Any]]
    stream_created: pulumi.Input[str] | None = None
    adopt: bool = False

    def to_props(self) -> dict[str, Any]:
        config = consumer_config_to_inputs(self.config) if isinstance(self.config, ConsumerConfig) else self.config
        return connection_props(
            self, {"stream": self.stream, "stream_created": self.stream_created, "config": config,
                   **control_props(self)}
        )


class Consumer(JetStreamResource, module=JETSTREAM_MODULE, name="Consumer"):
    """A durable JetStream consumer managed by Pulumi (type ``pulumi-python:dynamic/jetstream:Consumer``); its
    ``config`` is nats-py's ConsumerConfig as a plain dict."""

    def __init__(
        self,
        resource_name: str,
        args: ConsumerArgs | Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = args if isinstance(args, ConsumerArgs) else ConsumerArgs.from_mapping(args)
        props = args.to_props()
        props.update({"name": None, "durable": None, "live_config": None})
        super().__init__(ConsumerProvider(), resource_name, props, jetstream_options(resource_name, opts))

    @property
    @pulumi.getter
    def name(self) -> pulumi.Output[str]:
        """The consumer's name on the server (its durable name)."""
        return cast("pulumi.Output[str]", pulumi.get(self, "name"))

    @property
    @pulumi.getter
    def stream(self) -> pulumi.Output[str]:
        """The stream it reads."""
        return cast("pulumi.Output[str]", pulumi.get(self, "stream"))

    @property
    @pulumi.getter
    def durable(self) -> pulumi.Output[str]:
        """Its durable name."""
        return cast("pulumi.Output[str]", pulumi.get(self, "durable"))
