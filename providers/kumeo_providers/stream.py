"""The JetStream stream as a Pulumi resource: ``Stream(name, StreamArgs(config=StreamConfig(...), server_url=...))``.

Which changes replace the stream (delete, then create: its messages are lost) and which update it in place follows
nats-server's own update check (``configUpdateCheck`` in ``server/stream.go``, verified against nats-server 2.15).
A replacement is refused (the preview fails naming the stream, the field and old → new) unless the input
``allow_replace`` is true; the connection inputs (``server_url``, credentials, TLS files) are never identity, so
changing them is an update that reconnects.

Replaced — the server refuses to change them on a live stream:
  * ``name``
  * ``storage`` (file ↔ memory)
  * ``retention`` to or from ``workqueue`` (``limits`` ↔ ``interest`` is an update; note that switching to
    ``interest`` drops messages every consumer has acknowledged)
  * ``mirror`` set or changed (removing it is an update: it promotes the mirror to a normal stream)
  * ``persist_mode``, ``allow_msg_counter``, ``template_owner``
  * ``first_seq`` (only meaningful when the stream is created)
  * one-way switches turned back off: ``sealed``, ``deny_delete``, ``deny_purge``, ``allow_msg_ttl``,
    ``allow_msg_schedules`` (turning them on is an update)

Everything else is updated in place: ``subjects``, ``description``, limits (``max_msgs``, ``max_bytes``, ``max_age``,
``max_msgs_per_subject``, ``max_msg_size``, ``max_consumers``), ``discard``, ``duplicate_window``, ``num_replicas``
(clustered servers only), ``sources``, ``republish``, ``subject_transform``, ``compression``, ``allow_direct``,
``allow_rollup_hdrs``, ``metadata``, ``consumer_limits``, ….

``create`` of a stream that already exists on the server fails unless the input ``adopt`` is true; then the stream
is taken over as it is and updated to the desired configuration (refused if that needs a replacement).

A partition stream's partition count (the N of ``{{partition(N,1)}}`` in its source's subject transform) is an
in-place update, but not a harmless one (:mod:`kumeo_providers._lanes`): the diff warns what it does to in-flight
events and their order, and ``update`` refuses it while any lane consumer still holds events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import pulumi
from nats.js import JetStreamContext
from nats.js.api import StreamConfig, StreamInfo
from pulumi.dynamic import CheckFailure, DiffResult, UpdateResult

from kumeo_iac.jetstream import (
    Outcome,
    apply_stream,
    delete_stream,
    find_stream,
    stream_config_from_inputs,
    stream_config_to_inputs,
)
from kumeo_providers._lanes import (
    UndrainedLanesError,
    agent_of,
    lane_backlog,
    partition_change,
    partition_change_warning,
    undrained_message,
)
from kumeo_providers._provider import (
    ConnectionArgs,
    JetStreamProvider,
    JetStreamResource,
    Live,
    announce,
    connection_props,
    control_props,
    jetstream_options,
    name_failures,
    run_sync,
    unwrap,
)
from kumeo_providers._types import JETSTREAM_MODULE

__all__ = ["STREAM_REPLACE_FIELDS", "Stream", "StreamArgs", "StreamProvider"]

# Fields whose every change replaces the stream.
STREAM_REPLACE_FIELDS: frozenset[str] = frozenset(
    {"name", "storage", "persist_mode", "allow_msg_counter", "template_owner", "first_seq"}
)
# Switches the server lets you turn on but never off again.
_ONE_WAY_FIELDS = frozenset({"sealed", "deny_delete", "deny_purge", "allow_msg_ttl", "allow_msg_schedules"})


class StreamProvider(JetStreamProvider):
    """Creates, updates, reads and deletes one JetStream stream (a Pulumi dynamic provider)."""

    kind = "stream"
    noun = "stream"
    config_type = StreamConfig
    server_defaults: ClassVar[Mapping[str, Any]] = {
        "storage": "file",
        "retention": "limits",
        "persist_mode": "default",
        "first_seq": 0,
        "max_consumers": -1,
        "max_msgs": -1,
        "max_bytes": -1,
        "num_replicas": 1,
        "compression": "none",
        "allow_direct": False,
        "mirror_direct": False,
        "allow_msg_ttl": False,
        "allow_msg_schedules": False,
        "allow_msg_counter": False,
    }
    zero_means_server_default = frozenset({"duplicate_window"})

    def replaces_on_change(self, field: str, old: Any, new: Any) -> bool:
        if field in STREAM_REPLACE_FIELDS:
            return True
        if field == "retention":
            return "workqueue" in (old, new)
        if field == "mirror":
            return new is not None
        if field in _ONE_WAY_FIELDS:
            return bool(old) and not bool(new)
        return False

    def check_config(self, config: StreamConfig, inputs: Mapping[str, Any]) -> list[CheckFailure]:
        failures = name_failures(config.name, "config.name", "stream")
        if not config.subjects and config.mirror is None and not config.sources:
            failures.append(
                CheckFailure("config.subjects", "a stream needs subjects (or a mirror or sources) to store anything")
            )
        return failures

    def resource_id(self, inputs: Mapping[str, Any]) -> str:
        return str(inputs["config"]["name"])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        result = super().diff(_id, olds, news)
        old_config, new_config = unwrap(olds.get("config")), unwrap(news.get("config"))
        change = partition_change(old_config, new_config)
        if change is not None and not result.replaces:
            name = old_config.get("name") if isinstance(old_config, Mapping) else None
            agent = agent_of(new_config) or agent_of(old_config)
            announce(partition_change_warning(str(name or _id), agent, *change), warning=True)
        return result

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        change = partition_change(self._normalize(olds.get("config")), self._normalize(news.get("config")))
        if change is not None:
            inputs = self._inputs(news)
            name = str(inputs["config"]["name"])  # a new name is a replacement, never an update
            held = run_sync(lambda: self._with_js(inputs, lambda js: lane_backlog(js, name)))
            if held:
                raise UndrainedLanesError(undrained_message(
                    f"change the partitions of stream {name} from {change[0]} to {change[1]}", held))
        return super().update(_id, olds, news)

    def identity_outputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"name": inputs["config"]["name"]}

    async def apply(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> tuple[Live, Outcome]:
        info, outcome = await apply_stream(js, stream_config_from_inputs(inputs["config"]))
        return _live(info), outcome

    async def fetch(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> Live | None:
        info = await find_stream(js, inputs["config"]["name"])
        return None if info is None else _live(info)

    async def remove(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> None:
        await delete_stream(js, inputs["config"]["name"])


def _live(info: StreamInfo) -> Live:
    return Live(
        config=stream_config_to_inputs(info.config),
        outputs={"created": info.created.isoformat() if info.created is not None else None},
        stored=info.state.messages if info.state is not None else None,
    )


@dataclasses.dataclass(kw_only=True)
class StreamArgs(ConnectionArgs):
    """The inputs of a :class:`Stream`: its nats-py StreamConfig and the NATS server to apply it to.

    ``adopt``: take over a stream that already exists on the server (otherwise creating the resource fails).
    ``allow_replace``: allow a change that replaces the stream, deleting its messages (otherwise it is refused).
    """

    config: StreamConfig | Mapping[str, Any] | pulumi.Input[Mapping[str, Any]]
    adopt: bool = False
    allow_replace: bool = False

    def to_props(self) -> dict[str, Any]:
        config = stream_config_to_inputs(self.config) if isinstance(self.config, StreamConfig) else self.config
        return connection_props(self, {"config": config, **control_props(self)})


class Stream(JetStreamResource, module=JETSTREAM_MODULE, name="Stream"):
    """A JetStream stream managed by Pulumi (type ``pulumi-python:dynamic/jetstream:Stream``); its ``config`` is
    nats-py's StreamConfig as a plain dict. ``created`` is the server's creation time: it changes only when the
    stream is deleted and created again (consumers take it to follow a replaced stream)."""

    def __init__(
        self,
        resource_name: str,
        args: StreamArgs | Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = args if isinstance(args, StreamArgs) else StreamArgs.from_mapping(args)
        props = args.to_props()
        props.update({"name": None, "created": None, "live_config": None})
        super().__init__(StreamProvider(), resource_name, props, jetstream_options(resource_name, opts))

    @property
    @pulumi.getter
    def name(self) -> pulumi.Output[str]:
        """The stream's name on the server."""
        return cast("pulumi.Output[str]", pulumi.get(self, "name"))

    @property
    @pulumi.getter
    def created(self) -> pulumi.Output[str]:
        """When the server created the stream (changes only when it is created again)."""
        return cast("pulumi.Output[str]", pulumi.get(self, "created"))
