"""The one JetStream layer of Kumeo: connecting, subject patterns, configurations and idempotent open-or-create.

The Pulumi providers (``pulumi up``), ``kumeo run``, the agent worker, the gateway, the dashboard and the CLI all go
through this package, so they connect, match subjects and apply a Plan's streams, consumers and key-value buckets the
same way. Configurations are nats-py's own types (:class:`~nats.js.api.StreamConfig`,
:class:`~nats.js.api.ConsumerConfig`, :class:`~nats.js.api.KeyValueConfig`); the ``*_to_inputs``/``*_from_inputs``
helpers turn them into the plain wire-shaped dicts the Plan holds (durations in nanoseconds) and back.

::

    from kumeo_iac import jetstream

    nc = await jetstream.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    await jetstream.ensure_stream(js, jetstream.stream_config_from_inputs(plan_stream.config))
    kv = await jetstream.open_key_value(js, {"bucket": "kumeo_fraud_joins", "history": 1})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumeo_iac._lazy import lazy_exports

if TYPE_CHECKING:
    from kumeo_iac.jetstream._audit_stream import (
        AUDIT_MAX_AGE_SECONDS,
        AUDIT_STREAM,
        AUDIT_SUBJECTS,
        audit_stream_config,
    )
    from kumeo_iac.jetstream._config import (
        ConfigFieldError,
        canonical_inputs,
        coerce_field,
        comparable_config,
        config_defaults,
        config_field_types,
        config_from_inputs,
        consumer_config_from_inputs,
        consumer_config_to_inputs,
        field_from_input,
        key_value_config_from_inputs,
        key_value_config_from_stream,
        key_value_config_to_inputs,
        key_value_stream_name,
        stream_config_from_inputs,
        stream_config_to_inputs,
        without_server_metadata,
    )
    from kumeo_iac.jetstream._connect import (
        TLS_ENV_NAMES,
        TLS_SETTING_NAMES,
        close_quietly,
        connect,
        connect_options_from_env,
        describe_error,
        tls_context,
        with_jetstream,
    )
    from kumeo_iac.jetstream._ensure import (
        ChangeRecorder,
        Outcome,
        apply_consumer,
        apply_key_value,
        apply_stream,
        delete_consumer,
        delete_key_value,
        delete_stream,
        ensure_consumer,
        ensure_key_value,
        ensure_stream,
        find_consumer,
        find_key_value,
        find_stream,
        open_key_value,
        set_change_recorder,
    )
    from kumeo_iac.jetstream._subjects import covers, minimal_subjects, overlap, subject_matches, valid_subject

# Names are imported on first use: the compiler and `kumeo check` read the subject rules without loading nats-py.
_WHERE: dict[str, str] = {
    "AUDIT_MAX_AGE_SECONDS": "._audit_stream",
    "AUDIT_STREAM": "._audit_stream",
    "AUDIT_SUBJECTS": "._audit_stream",
    "audit_stream_config": "._audit_stream",
    "ConfigFieldError": "._config",
    "canonical_inputs": "._config",
    "coerce_field": "._config",
    "comparable_config": "._config",
    "config_defaults": "._config",
    "config_field_types": "._config",
    "config_from_inputs": "._config",
    "consumer_config_from_inputs": "._config",
    "consumer_config_to_inputs": "._config",
    "field_from_input": "._config",
    "key_value_config_from_inputs": "._config",
    "key_value_config_from_stream": "._config",
    "key_value_config_to_inputs": "._config",
    "key_value_stream_name": "._config",
    "stream_config_from_inputs": "._config",
    "stream_config_to_inputs": "._config",
    "without_server_metadata": "._config",
    "TLS_ENV_NAMES": "._connect",
    "TLS_SETTING_NAMES": "._connect",
    "close_quietly": "._connect",
    "connect": "._connect",
    "connect_options_from_env": "._connect",
    "describe_error": "._connect",
    "tls_context": "._connect",
    "with_jetstream": "._connect",
    "ChangeRecorder": "._ensure",
    "Outcome": "._ensure",
    "apply_consumer": "._ensure",
    "apply_key_value": "._ensure",
    "apply_stream": "._ensure",
    "delete_consumer": "._ensure",
    "delete_key_value": "._ensure",
    "delete_stream": "._ensure",
    "ensure_consumer": "._ensure",
    "ensure_key_value": "._ensure",
    "ensure_stream": "._ensure",
    "find_consumer": "._ensure",
    "find_key_value": "._ensure",
    "find_stream": "._ensure",
    "open_key_value": "._ensure",
    "set_change_recorder": "._ensure",
    "covers": "._subjects",
    "minimal_subjects": "._subjects",
    "overlap": "._subjects",
    "subject_matches": "._subjects",
    "valid_subject": "._subjects",
}

__all__ = [
    "AUDIT_MAX_AGE_SECONDS",
    "AUDIT_STREAM",
    "AUDIT_SUBJECTS",
    "TLS_ENV_NAMES",
    "TLS_SETTING_NAMES",
    "ChangeRecorder",
    "ConfigFieldError",
    "Outcome",
    "apply_consumer",
    "apply_key_value",
    "apply_stream",
    "audit_stream_config",
    "canonical_inputs",
    "close_quietly",
    "coerce_field",
    "comparable_config",
    "config_defaults",
    "config_field_types",
    "config_from_inputs",
    "connect",
    "connect_options_from_env",
    "consumer_config_from_inputs",
    "consumer_config_to_inputs",
    "covers",
    "delete_consumer",
    "delete_key_value",
    "delete_stream",
    "describe_error",
    "ensure_consumer",
    "ensure_key_value",
    "ensure_stream",
    "field_from_input",
    "find_consumer",
    "find_key_value",
    "find_stream",
    "key_value_config_from_inputs",
    "key_value_config_from_stream",
    "key_value_config_to_inputs",
    "key_value_stream_name",
    "minimal_subjects",
    "open_key_value",
    "overlap",
    "set_change_recorder",
    "stream_config_from_inputs",
    "stream_config_to_inputs",
    "subject_matches",
    "tls_context",
    "valid_subject",
    "with_jetstream",
    "without_server_metadata",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals(), __all__)
