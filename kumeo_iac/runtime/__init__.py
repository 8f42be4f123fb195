"""The agent runtime: the worker that runs one agent of a Plan on NATS JetStream, in a pod or in `kumeo run`.

Names are imported on first use, so a sub-package (an agent kind, the LLM client) costs no more than itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names below are, for type checkers; at run time they load on first use
    from kumeo_iac.runtime._worker import Worker

__all__ = ["PARTITION_ENV", "Worker"]

_WHERE = {
    "PARTITION_ENV": "_partitions",
    "Worker": "_worker",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
