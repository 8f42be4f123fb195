"""Python entry points of the custom_code example (``Custom("handlers:enrich")``), importable from the workflow's
directory. Each takes the event's payload (and, if it asks for it, the Event) and returns a dict or a list."""

from __future__ import annotations

import asyncio
from typing import Any

from kumeo_iac.runtime._agent import Event, EventRejected


def enrich(payload: dict[str, Any]) -> dict[str, Any]:
    """A plain function runs in a thread under the agent's timeout: safe for blocking or CPU-bound code."""
    if "amount" not in payload:
        raise EventRejected("an order needs an 'amount'")  # permanent: straight to the dead-letter subject
    amount = float(payload["amount"])
    return {**payload, "amount_cents": round(amount * 100), "size": "large" if amount >= 1000 else "small"}


async def split_lines(payload: dict[str, Any], event: Event) -> list[dict[str, Any]]:
    """An async function runs on the worker's loop; two parameters means it also receives the Event."""
    await asyncio.sleep(0)  # e.g. await an HTTP call here
    return [{"order": event.id, "line": i, **line} for i, line in enumerate(payload.get("lines", []))]
