"""Names a package exports but imports on first use (PEP 562), so that importing the package costs nothing.

A package lists where each name lives and takes its module ``__getattr__`` and ``__dir__`` from :func:`lazy_exports`;
a ``TYPE_CHECKING`` block beside it tells type checkers what the names are.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any


def lazy_exports(
    package: str, where: Mapping[str, str], namespace: MutableMapping[str, Any], exported: Iterable[str],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: ``where`` maps each lazy name to its module (``"._worker"``,
    relative to the package, or absolute), and a name once loaded is stored in ``namespace`` (the package's
    ``globals()``), so later lookups never come back here."""
    names = sorted(set(exported))

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
