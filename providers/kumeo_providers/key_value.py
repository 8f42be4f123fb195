"""The JetStream key-value bucket as a Pulumi resource: ``KeyValue(name, KeyValueArgs(config=KeyValueConfig(...)))``.

A bucket is the stream ``KV_<bucket>``; an update changes the stream fields the bucket owns, as nats.go's
``UpdateKeyValue`` does (nats-py has no update of its own).

Replaced — the bucket is deleted and created again, losing its keys:
  * ``bucket``
  * ``storage`` (file ↔ memory), refused by the server like any stream's

A bucket holds data (joins in progress, reviews parked for a human), so like a stream's a replacement is refused
(the preview fails naming the bucket, the field and old → new) unless the input ``allow_replace`` is true, and
``create`` of a bucket that already exists fails unless the input ``adopt`` is true. The connection inputs
(``server_url``, credentials, TLS files) are never identity: changing them is an update that reconnects.

Everything else is updated in place: ``history``, ``ttl``, ``max_bytes``, ``max_value_size``, ``description``,
``replicas`` (clustered servers only), ``direct``, ``republish``, ``placement``. ``limit_marker_ttl`` is a client-side
setting of nats-py used only when the bucket is created.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import pulumi
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StreamInfo
from pulumi.dynamic import CheckFailure

from kumeo_iac.jetstream import (
    Outcome,
    apply_key_value,
    delete_key_value,
    find_key_value,
    key_value_config_from_inputs,
    key_value_config_from_stream,
    key_value_config_to_inputs,
    key_value_stream_name,
)
from kumeo_providers._provider import (
    ConnectionArgs,
    JetStreamProvider,
    JetStreamResource,
    Live,
    connection_props,
    control_props,
    jetstream_options,
)
from kumeo_providers._types import JETSTREAM_MODULE

__all__ = ["KEY_VALUE_REPLACE_FIELDS", "KeyValue", "KeyValueArgs", "KeyValueProvider"]

KEY_VALUE_REPLACE_FIELDS: frozenset[str] = frozenset({"bucket", "storage"})
_BUCKET_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")  # nats-py's VALID_BUCKET_RE
_MAX_HISTORY = 64


class KeyValueProvider(JetStreamProvider):
    """Creates, updates, reads and deletes one JetStream key-value bucket (a Pulumi dynamic provider)."""

    kind = "key-value bucket"
    noun = "bucket"
    stored_noun = "values"
    config_type = KeyValueConfig
    server_defaults: ClassVar[Mapping[str, Any]] = {
        "storage": "file",
        "direct": False,
        "max_bytes": -1,
        "max_value_size": -1,
    }

    def replaces_on_change(self, field: str, old: Any, new: Any) -> bool:
        return field in KEY_VALUE_REPLACE_FIELDS

    def check_config(self, config: KeyValueConfig, inputs: Mapping[str, Any]) -> list[CheckFailure]:
        failures = []
        if not _BUCKET_NAME.match(config.bucket or ""):
            failures.append(
                CheckFailure(
                    "config.bucket",
                    f"bucket name {config.bucket!r} may only contain letters, digits, '-' and '_'",
                )
            )
        if not 1 <= config.history <= _MAX_HISTORY:
            failures.append(
                CheckFailure("config.history", f"history must be between 1 and {_MAX_HISTORY}, got {config.history}")
            )
        if config.ttl is not None and config.ttl < 0:
            failures.append(CheckFailure("config.ttl", f"expected 0 or more seconds, got {config.ttl}"))
        if config.replicas < 1:
            failures.append(CheckFailure("config.replicas", f"expected at least 1 replica, got {config.replicas}"))
        return failures

    def resource_id(self, inputs: Mapping[str, Any]) -> str:
        return str(inputs["config"]["bucket"])

    def identity_outputs(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        bucket = inputs["config"]["bucket"]
        return {"name": bucket, "bucket": bucket, "stream": key_value_stream_name(bucket)}

    def project_field(self, field: str, desired: Any, live: Mapping[str, Any]) -> Any:
        if field == "limit_marker_ttl":
            return desired  # client-side only, never stored by the server
        return super().project_field(field, desired, live)

    async def apply(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> tuple[Live, Outcome]:
        info, outcome = await apply_key_value(js, key_value_config_from_inputs(inputs["config"]))
        return _live(info), outcome

    async def fetch(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> Live | None:
        info = await find_key_value(js, inputs["config"]["bucket"])
        return None if info is None else _live(info)

    async def remove(self, js: JetStreamContext, inputs: Mapping[str, Any]) -> None:
        await delete_key_value(js, inputs["config"]["bucket"])


def _live(info: StreamInfo) -> Live:
    """A bucket as its ``KV_<bucket>`` stream holds it; what it stores counts every kept revision of every key."""
    return Live(
        config=key_value_config_to_inputs(key_value_config_from_stream(info.config)),
        stored=info.state.messages if info.state is not None else None,
    )


@dataclasses.dataclass(kw_only=True)
class KeyValueArgs(ConnectionArgs):
    """The inputs of a :class:`KeyValue`: its nats-py KeyValueConfig and the NATS server to apply it to.

    ``adopt``: take over a bucket that already exists on the server (otherwise creating the resource fails).
    ``allow_replace``: allow a change that replaces the bucket, deleting its keys (otherwise it is refused).
    """

    config: KeyValueConfig | Mapping[str, Any] | pulumi.Input[Mapping[str, Any]]
    adopt: bool = False
    allow_replace: bool = False

    def to_props(self) -> dict[str, Any]:
        config = key_value_config_to_inputs(self.config) if isinstance(self.config, KeyValueConfig) else self.config
        return connection_props(self, {"config": config, **control_props(self)})


class KeyValue(JetStreamResource, module=JETSTREAM_MODULE, name="KeyValue"):
    """A JetStream key-value bucket managed by Pulumi (type ``pulumi-python:dynamic/jetstream:KeyValue``); its
    ``config`` is nats-py's KeyValueConfig as a plain dict."""

    def __init__(
        self,
        resource_name: str,
        args: KeyValueArgs | Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        args = args if isinstance(args, KeyValueArgs) else KeyValueArgs.from_mapping(args)
        props = args.to_props()
        props.update({"name": None, "bucket": None, "stream": None, "live_config": None})
        super().__init__(KeyValueProvider(), resource_name, props, jetstream_options(resource_name, opts))

    @property
    @pulumi.getter
    def name(self) -> pulumi.Output[str]:
        """The bucket's name (the same as ``bucket``)."""
        return cast("pulumi.Output[str]", pulumi.get(self, "name"))

    @property
    @pulumi.getter
    def bucket(self) -> pulumi.Output[str]:
        """The bucket's name on the server."""
        return cast("pulumi.Output[str]", pulumi.get(self, "bucket"))

    @property
    @pulumi.getter
    def stream(self) -> pulumi.Output[str]:
        """The stream holding the bucket (``KV_<bucket>``)."""
        return cast("pulumi.Output[str]", pulumi.get(self, "stream"))
