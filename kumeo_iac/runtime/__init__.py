"""The agent runtime: the worker that runs one agent of a Plan on NATS JetStream, in a pod or in `kumeo run`.

Names are imported on first use, so a sub-package (an agent kind, the LLM client) costs no more than itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumeo_iac._lazy import lazy_exports

if TYPE_CHECKING:  # what the names below are, for type checkers; at run time they load on first use
    from kumeo_iac.runtime._agent import Emit, Event, EventRejected, RuntimeAgent
    from kumeo_iac.runtime._worker import Worker

#: ``RuntimeAgent``, ``Event``, ``Emit`` and ``EventRejected`` are the agent contract: a kind of your own
#: (``kumeo_iac.register_kind``) names a RuntimeAgent subclass as its ``runtime_handler``.
__all__ = ["PARTITION_ENV", "Emit", "Event", "EventRejected", "RuntimeAgent", "Worker"]

_WHERE = {
    "PARTITION_ENV": "._partitions",
    "Emit": "._agent",
    "Event": "._agent",
    "EventRejected": "._agent",
    "RuntimeAgent": "._agent",
    "Worker": "._worker",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals(), __all__)
