"""Stream, consumer and key-value configurations as plain wire-shaped data, and back.

Inputs are the wire shape, the dicts nats-py's ``as_dict()`` gives and ``nats stream add --config`` reads: durations
in nanoseconds (integers), enums as their strings, None left out. The Plan stores configs in this shape, Pulumi
keeps them in its state, and ``kumeo render`` writes them, so all three read the same. Pulumi hands its ints back as
floats; the ``from`` direction turns them into ints again.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from nats.js.api import Base, ConsumerConfig, KeyValueConfig, StreamConfig, StreamConsumerLimits

from kumeo_iac.errors import KumeoDeployError

__all__ = [
    "ConfigFieldError",
    "canonical_inputs",
    "coerce_field",
    "comparable_config",
    "config_defaults",
    "config_field_types",
    "config_from_inputs",
    "consumer_config_from_inputs",
    "consumer_config_to_inputs",
    "field_from_input",
    "key_value_config_from_inputs",
    "key_value_config_from_stream",
    "key_value_config_to_inputs",
    "key_value_stream_name",
    "stream_config_from_inputs",
    "stream_config_to_inputs",
    "without_server_metadata",
]

_KV_STREAM_PREFIX = "KV_"
# The server stamps its own keys into `metadata` (`_nats.ver`, `_nats.level`, …); they are not ours to compare.
_SERVER_METADATA_PREFIX = "_nats."

_B = TypeVar("_B", bound=Base)

# Fields nats-py keeps in seconds but the wire carries in nanoseconds (the conversions of nats-py's from_response).
_NANOSECOND_FIELDS: dict[type[Base], frozenset[str]] = {
    StreamConfig: frozenset({"max_age", "duplicate_window", "subject_delete_marker_ttl"}),
    StreamConsumerLimits: frozenset({"inactive_threshold"}),
    ConsumerConfig: frozenset({"ack_wait", "idle_heartbeat", "inactive_threshold", "backoff"}),
    KeyValueConfig: frozenset({"ttl", "limit_marker_ttl"}),
}
_NANOSECONDS_PER_SECOND = 10**9


def stream_config_to_inputs(config: StreamConfig) -> dict[str, Any]:
    """A StreamConfig as plain JSON data in the wire shape (``as_dict()``: nanoseconds, enum strings, no None)."""
    return cast("dict[str, Any]", canonical_inputs(config.as_dict()))


def stream_config_from_inputs(inputs: Mapping[str, Any]) -> StreamConfig:
    """Build a StreamConfig from wire-shaped inputs; unknown keys are ignored, integral floats become ints."""
    return config_from_inputs(StreamConfig, inputs)


def consumer_config_to_inputs(config: ConsumerConfig) -> dict[str, Any]:
    """A ConsumerConfig as plain JSON data in the wire shape (``as_dict()``: nanoseconds, enum strings, no None)."""
    return cast("dict[str, Any]", canonical_inputs(config.as_dict()))


def consumer_config_from_inputs(inputs: Mapping[str, Any]) -> ConsumerConfig:
    """Build a ConsumerConfig from wire-shaped inputs; unknown keys are ignored, integral floats become ints."""
    return config_from_inputs(ConsumerConfig, inputs)


def key_value_config_to_inputs(config: KeyValueConfig) -> dict[str, Any]:
    """A KeyValueConfig as plain JSON data in nats-py's ``as_dict()`` shape (``ttl`` in nanoseconds, no None)."""
    data = config.as_dict()
    if config.limit_marker_ttl is not None:  # as_dict drops this client-side setting; keep it, in nanoseconds
        data["limit_marker_ttl"] = Base._to_nanoseconds(config.limit_marker_ttl)
    return cast("dict[str, Any]", canonical_inputs(data))


def key_value_config_from_inputs(inputs: Mapping[str, Any]) -> KeyValueConfig:
    """Build a KeyValueConfig from ``as_dict()``-shaped inputs (ttl in nanoseconds); unknown keys are ignored."""
    return config_from_inputs(KeyValueConfig, inputs)


def canonical_inputs(value: Any) -> Any:
    """Wire-shaped data in one canonical form: integral floats as ints, enums as strings, None dropped from dicts."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.datetime):
        return Base._to_utc_iso(value)
    if isinstance(value, Base):
        return canonical_inputs(value.as_dict())
    if isinstance(value, Mapping):
        return {str(k): canonical_inputs(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [canonical_inputs(v) for v in value]
    return value


class ConfigFieldError(KumeoDeployError):
    """A configuration field has a value of the wrong type or outside its allowed values."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def config_from_inputs(config_type: type[_B], inputs: Mapping[str, Any], *, path: str = "config") -> _B:
    """Build a nats-py config dataclass (nested ones included) from wire-shaped inputs.

    Unknown keys are ignored, as nats-py ignores fields from newer servers; a value of the wrong type raises
    :class:`ConfigFieldError` naming the field.
    """
    if isinstance(inputs, config_type):
        return inputs
    if not isinstance(inputs, Mapping):
        raise ConfigFieldError(path, f"expected an object, got {_kind_of(inputs)}")
    params = {}
    for key, value in inputs.items():
        if value is None or key not in config_field_types(config_type):
            continue
        params[key] = field_from_input(config_type, key, value, f"{path}.{key}")
    try:
        return config_type(**params)
    except TypeError as exc:
        missing = [
            f.name
            for f in dataclasses.fields(config_type)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in params
        ]
        reason = f"missing required field(s) {', '.join(missing)}" if missing else str(exc)
        raise ConfigFieldError(path, reason) from exc


def field_from_input(config_type: type[Base], key: str, value: Any, path: str) -> Any:
    """One wire-shaped field as the typed value nats-py's dataclass holds (nanoseconds become seconds)."""
    hint = config_field_types(config_type)[key]
    if key in _NANOSECOND_FIELDS.get(config_type, ()):
        if isinstance(value, (list, tuple)):
            value = [_seconds(v, f"{path}[{i}]") for i, v in enumerate(value)]
        else:
            value = _seconds(value, path)
    return coerce_field(hint, value, path)


def _seconds(nanoseconds: Any, path: str) -> float:
    if isinstance(nanoseconds, bool) or not isinstance(nanoseconds, (int, float)):
        raise ConfigFieldError(path, f"expected a duration in nanoseconds (an integer), got {_kind_of(nanoseconds)}")
    return nanoseconds / _NANOSECONDS_PER_SECOND


def config_field_types(config_type: type[Base]) -> Mapping[str, Any]:
    """The resolved type of every field of a nats-py config dataclass."""
    hints = _FIELD_TYPES.get(config_type)
    if hints is None:  # resolving the annotations is slow, and asked for every field of every config
        hints = _FIELD_TYPES[config_type] = types.MappingProxyType(typing.get_type_hints(config_type))
    return hints


_FIELD_TYPES: dict[type[Base], Mapping[str, Any]] = {}


def config_defaults(config_type: type[Base]) -> Mapping[str, Any]:
    """The wire-shaped value nats-py sends for every field left unset (``as_dict()`` of a bare config)."""
    defaults = _DEFAULTS.get(config_type)
    if defaults is None:  # computed once per config class
        defaults = _DEFAULTS[config_type] = _bare_config_inputs(config_type)
    return defaults


_DEFAULTS: dict[type[Base], Mapping[str, Any]] = {}


def _bare_config_inputs(config_type: type[Base]) -> Mapping[str, Any]:
    required = {
        f.name: "_"
        for f in dataclasses.fields(config_type)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    data = canonical_inputs(config_type(**required).as_dict())
    return types.MappingProxyType({k: v for k, v in data.items() if k not in required})


def coerce_field(hint: Any, value: Any, path: str) -> Any:
    """Convert one plain value to the type a nats-py dataclass field declares, or raise ConfigFieldError."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None:
            return None
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(options) == 1:
            return coerce_field(options[0], value, path)
        return value
    if hint is Any:
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigFieldError(path, f"expected a list, got {_kind_of(value)}")
        (item,) = typing.get_args(hint) or (Any,)
        return [coerce_field(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigFieldError(path, f"expected an object, got {_kind_of(value)}")
        _, item = typing.get_args(hint) or (str, Any)
        return {str(k): coerce_field(item, v, f"{path}.{k}") for k, v in value.items()}
    if not isinstance(hint, type):
        return value
    if issubclass(hint, enum.Enum):
        if isinstance(value, hint):
            return value
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in hint)
            raise ConfigFieldError(path, f"{value!r} is not one of {allowed}") from None
    if issubclass(hint, Base):
        return config_from_inputs(hint, value, path=path)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigFieldError(path, f"expected true or false, got {_kind_of(value)}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigFieldError(path, "expected an integer, got a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigFieldError(path, f"expected an integer, got {_kind_of(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigFieldError(path, f"expected a number, got {_kind_of(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigFieldError(path, f"expected a string, got {_kind_of(value)}")
    if hint is datetime.datetime:
        if isinstance(value, datetime.datetime):
            return value
        if isinstance(value, str):
            try:
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                pass
        raise ConfigFieldError(path, f"expected an RFC 3339 timestamp, got {_kind_of(value)}")
    return value


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def comparable_config(config: Base) -> dict[str, Any]:
    """A configuration in canonical wire shape without the server's metadata keys, for telling two apart."""
    data: dict[str, Any] = canonical_inputs(config)
    if isinstance(data.get("metadata"), dict):
        data["metadata"] = without_server_metadata(data["metadata"])
    return data


def without_server_metadata(metadata: Mapping[str, str] | None) -> dict[str, str] | None:
    """Drop the ``_nats.*`` keys the server adds to a stream's or consumer's metadata."""
    if metadata is None:
        return None
    return {k: v for k, v in metadata.items() if not k.startswith(_SERVER_METADATA_PREFIX)}


# -- key-value buckets ------------------------------------------------------------------------------------------


def key_value_stream_name(bucket: str) -> str:
    """The stream that holds a key-value bucket (``KV_<bucket>``, nats-py's and the server's convention)."""
    return f"{_KV_STREAM_PREFIX}{bucket}"


def key_value_config_from_stream(config: StreamConfig) -> KeyValueConfig:
    """Read a bucket's KeyValueConfig back from the StreamConfig of its ``KV_<bucket>`` stream."""
    name = config.name or ""
    bucket = name.removeprefix(_KV_STREAM_PREFIX)
    max_bytes = config.max_bytes if config.max_bytes is not None and config.max_bytes >= 0 else None
    max_value_size = config.max_msg_size if config.max_msg_size is not None and config.max_msg_size >= 0 else None
    return KeyValueConfig(
        bucket=bucket,
        description=config.description,
        max_value_size=max_value_size,
        history=config.max_msgs_per_subject,
        ttl=config.max_age or None,
        max_bytes=max_bytes,
        storage=config.storage,
        replicas=config.num_replicas or 1,
        placement=config.placement,
        republish=config.republish,
        direct=config.allow_direct,
    )

