"""Multi-input joins: the parts of one event, gathered in the workflow's joins KV bucket until all have arrived.

An agent with several inputs (``inputs: {a: x.output, b: y.output}``) receives one event ``{a: …, b: …}`` per
event id. Each part, as it arrives on any replica, is merged into the key ``<agent>.<event-id>`` with a
revision-checked update (``Nats-Expected-Last-Subject-Sequence``), so two replicas writing different parts at the
same moment never lose one: the loser re-reads and merges again. Exactly one writer sees the entry become complete.

The state of a join is read from the key itself:

- a JSON entry ``{"state": "open", "first_seen": …, "parts": {…}}`` — still waiting;
- a ``DEL`` marker — the join completed (the worker deletes the key after publishing the result), so a late
  redelivery of one of its parts is a duplicate and is dropped;
- ``{"state": "expired"}`` or a ``PURGE`` marker — the join timed out and was dead-lettered; a part arriving later
  is dead-lettered too rather than opening a join that can never complete.

Expiry is a periodic sweep (every worker replica runs one) over the agent's keys comparing each entry's
``first_seen`` to the join TTL. A sweeper claims an expired entry with a revision-checked update to ``expired``
before dead-lettering it, so a part landing at that moment either completes the join first or sees the claim;
dead letters carry a ``Nats-Msg-Id`` so two sweepers racing on one key publish one dead letter. We chose the sweep
over per-key TTLs (``Nats-TTL``) because a key that silently vanishes cannot be dead-lettered, and over a timer per
join because timers die with the replica that set them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from typing import Any, Literal

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

_KEY_TOKEN = re.compile(r"[-_=A-Za-z0-9]+\Z")
_MAX_ATTEMPTS = 20

JoinState = Literal["waiting", "complete", "done", "expired"]


def join_key(agent: str, event_id: str) -> str:
    """The KV key of one join: ``<agent>.<event-id>`` (ids KV keys cannot hold are replaced by a hash)."""
    token = event_id if _KEY_TOKEN.match(event_id) else hashlib.sha256(event_id.encode()).hexdigest()[:40]
    return f"{agent}.{token}"


@dataclasses.dataclass(frozen=True)
class JoinResult:
    """What storing one part did: ``complete`` carries every part; ``done``/``expired`` say the join is over."""

    state: JoinState
    parts: dict[str, Any]
    first_seen: float
    revision: int = 0
    traceparent: str | None = None


@dataclasses.dataclass(frozen=True)
class ExpiredJoin:
    """A join whose TTL ended before every part arrived; the sweeper has claimed it for dead-lettering."""

    key: str
    event_id: str
    parts: dict[str, Any]
    missing: list[str]
    first_seen: float
    traceparent: str | None


class JoinStore:
    """The joins of one agent in the workflow's joins bucket."""

    def __init__(self, kv: KeyValue, agent: str, parts: list[str], ttl_seconds: float) -> None:
        self.kv = kv
        self.agent = agent
        self.parts = sorted(parts)
        self.ttl_seconds = ttl_seconds

    async def add(
        self, event_id: str, part: str, payload: Any, *, traceparent: str | None = None, now: float | None = None
    ) -> JoinResult:
        """Merge one part into its join and say whether the join is now complete."""
        key = join_key(self.agent, event_id)
        for _ in range(_MAX_ATTEMPTS):
            now_ = time.time() if now is None else now
            value: dict[str, Any] | None = None
            revision = 0
            try:
                entry = await self.kv.get(key)
                revision = entry.revision or 0
                value = json.loads(entry.value or b"{}")
            except KeyNotFoundError as exc:
                if exc.op == KV_DEL:
                    return JoinResult("done", {}, now_, exc.entry.revision if exc.entry else 0)
                if exc.op == KV_PURGE:
                    return JoinResult("expired", {}, now_, exc.entry.revision if exc.entry else 0)
            if value is not None and value.get("state") == "expired":
                return JoinResult("expired", value.get("parts", {}), value.get("first_seen", now_), revision)
            if value is None:
                value = {"state": "open", "event_id": event_id, "first_seen": now_, "parts": {},
                         "traceparent": traceparent}
            parts: dict[str, Any] = value.setdefault("parts", {})
            if part in parts and revision:
                # A redelivered part: nothing to write, but report the join as it stands.
                return self._result(value, revision)
            parts[part] = payload
            data = json.dumps(value, separators=(",", ":")).encode()
            try:
                if revision:
                    revision = await self.kv.update(key, data, last=revision)
                else:
                    revision = await self.kv.create(key, data)
            except KeyWrongLastSequenceError:
                continue  # another replica wrote this join first: read it again and merge
            return self._result(value, revision)
        raise RuntimeError(f"join {key}: too much contention, gave up after {_MAX_ATTEMPTS} attempts")

    def _result(self, value: dict[str, Any], revision: int) -> JoinResult:
        parts = value.get("parts", {})
        state: JoinState = "complete" if all(p in parts for p in self.parts) else "waiting"
        return JoinResult(state, parts, value.get("first_seen", 0.0), revision, value.get("traceparent"))

    async def complete(self, event_id: str) -> None:
        """Mark the join done (its result is published) by deleting its key; the DEL marker remembers it."""
        await self.kv.delete(join_key(self.agent, event_id))

    async def claim_expired(self, now: float | None = None) -> list[ExpiredJoin]:
        """Claim every join of this agent older than the TTL (entries already claimed and not yet purged too)."""
        now = time.time() if now is None else now
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return []
        prefix = f"{self.agent}."
        claimed: list[ExpiredJoin] = []
        for key in keys:
            if not key.startswith(prefix):
                continue
            try:
                entry = await self.kv.get(key)
                value = json.loads(entry.value or b"{}")
            except (KeyNotFoundError, ValueError):
                continue
            first_seen = float(value.get("first_seen", now))
            if now - first_seen < self.ttl_seconds:
                continue
            if value.get("state") != "expired":
                value["state"] = "expired"
                try:
                    await self.kv.update(key, json.dumps(value, separators=(",", ":")).encode(), last=entry.revision)
                except KeyWrongLastSequenceError:
                    continue  # a part just arrived or another sweeper claimed it; look again next sweep
            parts = value.get("parts", {})
            claimed.append(
                ExpiredJoin(
                    key=key,
                    event_id=str(value.get("event_id", key[len(prefix):])),
                    parts=parts,
                    missing=[p for p in self.parts if p not in parts],
                    first_seen=first_seen,
                    traceparent=value.get("traceparent"),
                )
            )
        return claimed

    async def forget(self, key: str) -> None:
        """Purge an expired join once its dead letter is published; the PURGE marker turns late parts away."""
        await self.kv.purge(key)
