"""Rules about values that end up in Kubernetes objects and ConfigMaps, shared by validation and compile so that a
program `kumeo check` accepts is one compile can plan: resource quantities and literal secrets."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

__all__ = ["SECRET_KEY", "kubernetes_quantity", "literal_secrets"]

#: Setting names whose values are credentials: they must never be written literally (they would land in a ConfigMap).
SECRET_KEY: Final = re.compile(
    r"(?i)(api[_-]?key|apikey|password|passwd|secret|access[_-]?token|auth[_-]?token|bearer)\Z")
_QUANTITY: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?\Z")


def kubernetes_quantity(value: Any) -> str | None:
    """``value`` as a Kubernetes quantity (``"500m"``, ``"1Gi"``, ``2`` → ``"2"``), or ``None`` when it is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        value = f"{value:g}"
    text = str(value).strip()
    return text if _QUANTITY.match(text) else None


def literal_secrets(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The paths of credentials written literally in a value (``api_key: "sk-…"``); ``"${env.NAME}"`` is fine."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if SECRET_KEY.match(str(k)) and isinstance(v, str) and v and not v.startswith("${"):
                yield (*path, str(k))
            yield from literal_secrets(v, (*path, str(k)))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from literal_secrets(v, (*path, i))
