"""The JetStream stream as a Pulumi resource: ``Stream(name, StreamArgs(config=StreamConfig(...), server_url=...))``.

Which changes replace the stream (delete, then create: its messages are lost) and which update it in place follows
nats-server's own update check (``configUpdateCheck`` in ``server/stream.go``, verified against nats-server 2.15):

Replaced — the server refuses to change them on a live stream:
  * ``name``; ``server_url`` (another server is another stream)
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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import pulumi
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from pulumi.dynamic import CheckFailure, Resource

from kumeo_providers._jetstream import (
    _ensure_stream,
    delete_stream,
    find_stream,
    stream_config_from_inputs,
    stream_config_to_inputs,
)
from kumeo_providers._provider import (
    ConnectionArgs,
    JetStreamProvider,
    connection_props,
    name_failures,
    with_secret_outputs,
)

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

    def identity_outputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {"name": inputs["config"]["name"]}

    async def apply(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        info, _outcome = await _ensure_stream(js, stream_config_from_inputs(inputs["config"]))
        return self.identity_outputs(inputs), stream_config_to_inputs(info.config)

    async def fetch(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        info = await find_stream(js, inputs["config"]["name"])
        return None if info is None else stream_config_to_inputs(info.config)

    async def remove(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> None:
        await delete_stream(js, inputs["config"]["name"])


@dataclasses.dataclass(kw_only=True)
class StreamArgs(ConnectionArgs):
    """The inputs of a :class:`Stream`: its nats-py StreamConfig and the NATS server to apply it to."""

    config: StreamConfig | Mapping[str, Any] | pulumi.Input[Mapping[str, Any]]

    def to_props(self) -> dict[str, Any]:
        config = stream_config_to_inputs(self.config) if isinstance(self.config, StreamConfig) else self.config
        return connection_props(self, {"config": config})


class Stream(Resource):
    """A JetStream stream managed by Pulumi; its ``config`` is nats-py's StreamConfig as a plain dict."""

    name: pulumi.Output[str]
    server_url: pulumi.Output[str]
    config: pulumi.Output[dict[str, Any]]
    live_config: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        resource_name: str,
        args: StreamArgs | Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = args if isinstance(args, StreamArgs) else StreamArgs.from_mapping(args)
        props = args.to_props()
        props.update({"name": None, "live_config": None})
        super().__init__(StreamProvider(), resource_name, props, with_secret_outputs(opts))
