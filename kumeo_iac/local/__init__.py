"""`kumeo run`: an embedded nats-server, the agent workers and an optional local LLM server.

Use it from Python::

    from kumeo_iac.local import LocalRunner, NatsServer

    async with LocalRunner(plan, base_dir="examples/orders") as runner:
        await runner.publish("orders.new", [("e1", {"amount": 5})])
        result = await runner.drain(timeout=60)

Names are imported on first use, so importing this package (the CLI, the test fixtures) costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DrainResult", "LocalRunner", "NatsServer", "Output", "free_port", "read_events"]

_WHERE = {
    "DrainResult": "_runner",
    "LocalRunner": "_runner",
    "Output": "_runner",
    "NatsServer": "_nats_server",
    "free_port": "_nats_server",
    "read_events": "_events",
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
