"""JetStream streams, consumers and key-value buckets for Kumeo: Pulumi resources and the async core beneath them.

The async core (``ensure_stream``, ``ensure_consumer``, ``ensure_key_value``, ``connect``, …) needs only nats-py and
is what ``kumeo run`` uses. The Pulumi resources (``Stream``, ``Consumer``, ``KeyValue`` and their providers) are
imported on first use, so the local runner never pays for importing Pulumi. ``Image`` (a container image built
through the Docker Engine API, tagged with its context's content hash) is the one resource that is not JetStream; it
needs the docker SDK.

The JetStream resources show in a preview as ``pulumi-python:dynamic/jetstream:Stream``, ``…:Consumer`` and
``…:KeyValue`` (:data:`STREAM_TYPE`, …). Their connection inputs are never identity, a change that would replace a
stream or bucket is refused unless the resource's ``allow_replace`` input is true
(:class:`ReplacementRefusedError`), and creating one that already exists on the server is refused unless its
``adopt`` input is true (:class:`AlreadyExistsError`); a partitioned agent's lanes are never deleted, nor its
partition count changed, while they hold events (:class:`UndrainedLanesError`); see docs/deploy.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kumeo_iac.jetstream import (
    ConfigFieldError,
    Outcome,
    connect,
    consumer_config_from_inputs,
    consumer_config_to_inputs,
    delete_consumer,
    delete_key_value,
    delete_stream,
    ensure_consumer,
    ensure_key_value,
    ensure_stream,
    find_consumer,
    find_key_value,
    find_stream,
    key_value_config_from_inputs,
    key_value_config_from_stream,
    key_value_config_to_inputs,
    key_value_stream_name,
    stream_config_from_inputs,
    stream_config_to_inputs,
    with_jetstream,
)
from kumeo_providers._audit import AUDIT_STREAM, AUDIT_SUBJECT, read_audit
from kumeo_providers._types import (
    CONSUMER_TYPE,
    KEY_VALUE_TYPE,
    LEGACY_DYNAMIC_TYPE,
    STREAM_TYPE,
)

if TYPE_CHECKING:
    from kumeo_providers._lanes import UndrainedLanesError
    from kumeo_providers._provider import AlreadyExistsError, ReplacementRefusedError, remember_urn
    from kumeo_providers.consumer import (
        CONSUMER_REPLACE_FIELDS,
        Consumer,
        ConsumerArgs,
        ConsumerProvider,
    )
    from kumeo_providers.image import (
        IMAGE_REPLACE_FIELDS,
        Image,
        ImageArgs,
        ImageProvider,
    )
    from kumeo_providers.key_value import (
        KEY_VALUE_REPLACE_FIELDS,
        KeyValue,
        KeyValueArgs,
        KeyValueProvider,
    )
    from kumeo_providers.stream import (
        STREAM_REPLACE_FIELDS,
        Stream,
        StreamArgs,
        StreamProvider,
    )

_PULUMI_EXPORTS = {
    "AlreadyExistsError": "_provider",
    "ReplacementRefusedError": "_provider",
    "remember_urn": "_provider",
    "UndrainedLanesError": "_lanes",
    "Stream": "stream",
    "StreamArgs": "stream",
    "StreamProvider": "stream",
    "STREAM_REPLACE_FIELDS": "stream",
    "Consumer": "consumer",
    "ConsumerArgs": "consumer",
    "ConsumerProvider": "consumer",
    "CONSUMER_REPLACE_FIELDS": "consumer",
    "KeyValue": "key_value",
    "KeyValueArgs": "key_value",
    "KeyValueProvider": "key_value",
    "KEY_VALUE_REPLACE_FIELDS": "key_value",
    "Image": "image",
    "ImageArgs": "image",
    "ImageProvider": "image",
    "IMAGE_REPLACE_FIELDS": "image",
}

__all__ = [
    "AUDIT_STREAM",
    "AUDIT_SUBJECT",
    "CONSUMER_REPLACE_FIELDS",
    "CONSUMER_TYPE",
    "IMAGE_REPLACE_FIELDS",
    "KEY_VALUE_REPLACE_FIELDS",
    "KEY_VALUE_TYPE",
    "LEGACY_DYNAMIC_TYPE",
    "STREAM_REPLACE_FIELDS",
    "STREAM_TYPE",
    "AlreadyExistsError",
    "ConfigFieldError",
    "Consumer",
    "ConsumerArgs",
    "ConsumerProvider",
    "Image",
    "ImageArgs",
    "ImageProvider",
    "KeyValue",
    "KeyValueArgs",
    "KeyValueProvider",
    "Outcome",
    "ReplacementRefusedError",
    "Stream",
    "StreamArgs",
    "StreamProvider",
    "UndrainedLanesError",
    "connect",
    "consumer_config_from_inputs",
    "consumer_config_to_inputs",
    "delete_consumer",
    "delete_key_value",
    "delete_stream",
    "ensure_consumer",
    "ensure_key_value",
    "ensure_stream",
    "find_consumer",
    "find_key_value",
    "find_stream",
    "key_value_config_from_inputs",
    "key_value_config_from_stream",
    "key_value_config_to_inputs",
    "key_value_stream_name",
    "read_audit",
    "remember_urn",
    "stream_config_from_inputs",
    "stream_config_to_inputs",
    "with_jetstream",
]


def __getattr__(name: str) -> Any:
    module = _PULUMI_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kumeo_providers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kumeo_providers.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
