"""Reviews in a JetStream KV bucket: one key per parked event, ``<agent>.<review-id>``, JSON value.

Every write after the first is revision-checked (``kv.update(key, value, last=revision)``), so two reviewers, or a
reviewer and the timeout sweeper, acting on the same review at the same moment never both win: the loser gets
:class:`ReviewConflict`. The store talks to a small :class:`KeyValueBackend` interface; :class:`NatsKeyValue`
adapts nats.py's ``KeyValue`` and :class:`MemoryKeyValue` keeps entries in a dict (for tests).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from typing import Protocol

from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from kumeo_iac.runtime.review._model import (
    Review,
    ReviewConflict,
    ReviewNotFound,
    ReviewStatus,
)

__all__ = ["KeyValueBackend", "MemoryKeyValue", "NatsKeyValue", "ReviewStore", "StoredEntry"]


@dataclasses.dataclass(frozen=True)
class StoredEntry:
    key: str
    value: bytes
    revision: int


class KeyValueBackend(Protocol):
    """What the review store needs of a KV bucket."""

    async def get(self, key: str) -> StoredEntry | None: ...

    async def create(self, key: str, value: bytes) -> int | None:
        """Write a new key; None when the key exists already."""
        ...

    async def update(self, key: str, value: bytes, last: int) -> int:
        """Write if the key is still at revision ``last``; ReviewConflict otherwise."""
        ...

    async def entries(self, prefix: str) -> list[StoredEntry]:
        """The latest value of every live key starting with ``prefix``."""
        ...

    async def ttl(self) -> float | None:
        """How long the bucket keeps an entry after its last write (None: forever)."""
        ...


class NatsKeyValue:
    """A :class:`KeyValueBackend` over nats.py's KeyValue."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, key: str) -> StoredEntry | None:
        try:
            entry = await self.kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        return StoredEntry(key, entry.value or b"", int(entry.revision or 0))

    async def create(self, key: str, value: bytes) -> int | None:
        try:
            return await self.kv.create(key, value)
        except KeyWrongLastSequenceError:
            return None

    async def update(self, key: str, value: bytes, last: int) -> int:
        try:
            return await self.kv.update(key, value, last=last)
        except KeyWrongLastSequenceError:
            raise _conflict(key, last) from None

    async def entries(self, prefix: str) -> list[StoredEntry]:
        # One watcher delivering the last value per key is one round trip for all reviews, not one per key.
        watcher = await self.kv.watch(f"{prefix}>")
        out: list[StoredEntry] = []
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                    continue
                out.append(StoredEntry(entry.key, entry.value, int(entry.revision or 0)))
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it unannotated
        return out

    async def ttl(self) -> float | None:
        status = await self.kv.status()
        return status.ttl or None


class MemoryKeyValue:
    """A :class:`KeyValueBackend` in a dict, with the same revision rules (for tests)."""

    def __init__(self, ttl: float | None = None) -> None:
        self.data: dict[str, StoredEntry] = {}
        self._sequence = 0
        self._ttl = ttl

    async def get(self, key: str) -> StoredEntry | None:
        return self.data.get(key)

    async def create(self, key: str, value: bytes) -> int | None:
        if key in self.data:
            return None
        return self._write(key, value)

    async def update(self, key: str, value: bytes, last: int) -> int:
        current = self.data.get(key)
        if current is None or current.revision != last:
            raise _conflict(key, last)
        return self._write(key, value)

    async def entries(self, prefix: str) -> list[StoredEntry]:
        return [e for k, e in sorted(self.data.items()) if k.startswith(prefix)]

    async def ttl(self) -> float | None:
        return self._ttl

    def _write(self, key: str, value: bytes) -> int:
        self._sequence += 1
        self.data[key] = StoredEntry(key, value, self._sequence)
        return self._sequence


class ReviewStore:
    """The reviews of one agent."""

    def __init__(self, kv: KeyValueBackend, agent: str) -> None:
        self.kv = kv
        self.agent = agent

    def key(self, review_id: str) -> str:
        return f"{self.agent}.{review_id}"

    async def park(self, review: Review) -> tuple[Review, bool]:
        """Store a new review; when one exists for the event already (a redelivery) return that one, not created."""
        revision = await self.kv.create(self.key(review.id), _encode(review))
        if revision is not None:
            return dataclasses.replace(review, revision=revision), True
        return await self.get(review.id), False

    async def get(self, review_id: str) -> Review:
        entry = await self.kv.get(self.key(review_id))
        if entry is None:
            raise ReviewNotFound(f"no review {review_id!r} (never parked, or expired)")
        return Review.from_json(json.loads(entry.value), entry.revision)

    async def list(self, statuses: Iterable[ReviewStatus] | None = None) -> list[Review]:
        """Reviews of this agent, oldest first, optionally only those in ``statuses``."""
        wanted = set(statuses) if statuses is not None else None
        out = []
        for entry in await self.kv.entries(f"{self.agent}."):
            review = Review.from_json(json.loads(entry.value), entry.revision)
            if wanted is None or review.status in wanted:
                out.append(review)
        out.sort(key=lambda r: (r.created_at, r.id))
        return out

    async def save(self, review: Review) -> Review:
        """Write ``review`` over the revision it was read at; ReviewConflict if someone wrote in between."""
        revision = await self.kv.update(self.key(review.id), _encode(review), review.revision)
        return dataclasses.replace(review, revision=revision)

    async def change(self, review_id: str, transition: Callable[[Review], Review], *,
                     expected_revision: int | None = None, attempts: int = 5) -> Review:
        """Apply ``transition`` to the latest review and save it.

        With ``expected_revision`` the caller acts on what it saw: a review changed since is a ReviewConflict.
        Without, a concurrent write (a comment) makes it re-read and re-apply, up to ``attempts`` times; the
        transition itself raises ReviewConflict when the review is no longer open.
        """
        for attempt in range(attempts):
            review = await self.get(review_id)
            if expected_revision is not None and review.revision != expected_revision:
                raise ReviewConflict(f"review {review_id} is at revision {review.revision}, not "
                                     f"{expected_revision}: someone acted on it first; read it again")
            try:
                return await self.save(transition(review))
            except ReviewConflict:
                if expected_revision is not None or attempt + 1 >= attempts:
                    raise
        raise AssertionError("unreachable")


def _encode(review: Review) -> bytes:
    return json.dumps(review.to_json(), separators=(",", ":"), ensure_ascii=False).encode()


def _conflict(key: str, last: int) -> ReviewConflict:
    return ReviewConflict(f"review {key.partition('.')[2]} changed since revision {last}; read it again")
