"""Agents the fault tests run inside real worker processes (``--agent-class fault_agents:Name``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from kumeo_iac.runtime._agent import Emit, Event, RuntimeAgent


class PassThrough(RuntimeAgent):
    """Emits its input unchanged."""

    async def process(self, event: Event) -> list[Emit]:
        return [Emit(event.data)]


class PoisonAware(RuntimeAgent):
    """Passes events on, but fails (a transient-looking error) on every delivery of ``{"poison": true}``."""

    async def process(self, event: Event) -> list[Emit]:
        if isinstance(event.data, dict) and event.data.get("poison"):
            raise RuntimeError(f"cannot digest poison event {event.id} (attempt {event.attempt})")
        return [Emit(event.data)]


class Slow(RuntimeAgent):
    """One event at a time, ``KUMEO_FAULT_DELAY`` seconds each (default 0.01): a downstream that cannot keep up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay = float(os.environ.get("KUMEO_FAULT_DELAY", "0.01"))
        self.lock = asyncio.Lock()

    async def process(self, event: Event) -> list[Emit]:
        async with self.lock:
            await asyncio.sleep(self.delay)
        # A payload of some size, so a worker hoarding events would show in its RSS.
        return [Emit({**event.data, "padding": "x" * 512})]


class Amplify(RuntimeAgent):
    """Emits ``{"score": x * 1e308}``: an ``x`` above 1 makes the output infinite, which no JSON can carry."""

    async def process(self, event: Event) -> list[Emit]:
        return [Emit({**event.data, "score": float(event.data.get("x", 0)) * 1e308})]
