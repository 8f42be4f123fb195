"""The Pulumi type tokens of the JetStream resources, importable without Pulumi (tests and tools compare with them).

``pulumi preview`` shows them: ``pulumi-python:dynamic/jetstream:Stream``, ``…:Consumer`` and ``…:KeyValue``. Before
they had a type of their own, every JetStream resource was a ``pulumi-python:dynamic:Resource``; each resource keeps
an alias to that type, so stacks deployed then keep their streams instead of replacing them.
"""

from __future__ import annotations

__all__ = ["CONSUMER_TYPE", "JETSTREAM_MODULE", "KEY_VALUE_TYPE", "LEGACY_DYNAMIC_TYPE", "STREAM_TYPE"]

#: The module of the dynamic resource types (``class Stream(Resource, module=JETSTREAM_MODULE, name="Stream")``).
JETSTREAM_MODULE = "jetstream"
STREAM_TYPE = f"pulumi-python:dynamic/{JETSTREAM_MODULE}:Stream"
CONSUMER_TYPE = f"pulumi-python:dynamic/{JETSTREAM_MODULE}:Consumer"
KEY_VALUE_TYPE = f"pulumi-python:dynamic/{JETSTREAM_MODULE}:KeyValue"
#: The type every dynamic resource had before: the alias that keeps existing stacks from replacing their objects.
LEGACY_DYNAMIC_TYPE = "pulumi-python:dynamic:Resource"
