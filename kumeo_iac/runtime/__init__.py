"""The agent runtime: the worker that runs one agent of a Plan on NATS JetStream, in a pod or in `kumeo run`.

Names are imported on first use, so a sub-package (an agent kind, the LLM client) costs no more than itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumeo_iac._lazy import lazy_exports

if TYPE_CHECKING:  # what the names below are, for type checkers; at run time they load on first use
    from kumeo_iac.runtime._worker import Worker

__all__ = ["PARTITION_ENV", "Worker"]

_WHERE = {
    "PARTITION_ENV": "._partitions",
    "Worker": "._worker",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals(), __all__)
