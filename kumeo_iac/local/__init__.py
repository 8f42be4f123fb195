"""`kumeo run`: an embedded nats-server, the agent workers and an optional local LLM server.

Use it from Python::

    from kumeo_iac.local import LocalRunner, NatsServer

    async with LocalRunner(plan, base_dir="examples/orders") as runner:
        await runner.publish("orders.new", [("e1", {"amount": 5})])
        result = await runner.drain(timeout=60)

Names are imported on first use, so importing this package (the CLI, the test fixtures) costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kumeo_iac._lazy import lazy_exports

if TYPE_CHECKING:  # what the names below are, for type checkers; at run time they load on first use
    from kumeo_iac.local._events import read_events
    from kumeo_iac.local._llm import LocalLLM, use_local_llm
    from kumeo_iac.local._nats_server import NatsServer, free_port
    from kumeo_iac.local._progress import Progress, ProgressLogHandler
    from kumeo_iac.local._reviews import ReviewWatch
    from kumeo_iac.local._runner import DrainResult, LocalRunner, Output, output_of

__all__ = [
    "DrainResult",
    "LocalLLM",
    "LocalRunner",
    "NatsServer",
    "Output",
    "Progress",
    "ProgressLogHandler",
    "ReviewWatch",
    "free_port",
    "output_of",
    "read_events",
    "use_local_llm",
]

_WHERE = {
    "DrainResult": "._runner",
    "LocalRunner": "._runner",
    "Output": "._runner",
    "NatsServer": "._nats_server",
    "free_port": "._nats_server",
    "read_events": "._events",
    "LocalLLM": "._llm",
    "use_local_llm": "._llm",
    "Progress": "._progress",
    "ProgressLogHandler": "._progress",
    "ReviewWatch": "._reviews",
    "output_of": "._runner",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals(), __all__)
