"""The runtime side of partitioned agents (see kumeo_iac.compile._partitions for the layout on NATS).

Two jobs: the upstream worker puts the key on the subject of the keyed copy it publishes (a hash of the key's
value, one subject token whatever the value holds), and the partitioned agent's worker learns which lane it
consumes — ``KUMEO_PARTITION`` (its StatefulSet ordinal through the downward API, or set by ``kumeo run``), else
in a pod the ordinal at the end of its hostname — and binds that lane's durable alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final

from kumeo_iac.errors import KumeoError

__all__ = ["MISSING_KEY_TOKEN", "PARTITION_ENV", "key_token", "keyed_subjects", "lane_durable", "lane_of_process"]

#: The variable naming a worker's lane (the same name compile puts in the StatefulSet's pod template).
PARTITION_ENV: Final = "KUMEO_PARTITION"
#: The token of an event without the key (or a null key): all of them share one lane, in order.
MISSING_KEY_TOKEN: Final = "_"
_ORDINAL: Final = re.compile(r"-(\d+)\Z")
_MISSING: Final = object()


def key_token(value: Any) -> str:
    """One subject token for a key value: equal values (as JSON) give equal tokens, ``None`` gives ``_``."""
    if value is None or value is _MISSING:
        return MISSING_KEY_TOKEN
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def _value_at(data: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(data, Mapping) or part not in data:
            return _MISSING
        data = data[part]
    return data


def keyed_subjects(keyed_outputs: Any, payload: bytes) -> list[str]:
    """The subjects of the keyed copies of one output (``settings["keyed_outputs"]`` of the upstream's Plan)."""
    if not keyed_outputs:
        return []
    try:
        data = json.loads(payload)
    except ValueError:
        data = None  # not JSON: no key, so the shared "_" lane
    return [f"{k['subject']}.{key_token(_value_at(data, k.get('key') or []))}" for k in keyed_outputs]


def lane_durable(agent: str, lane: int) -> str:
    """Lane ``lane``'s durable consumer (the name compile gives it)."""
    return f"{agent}_p{lane}"


def lane_of_process(partition: Mapping[str, Any], explicit: int | None, agent: str) -> int | None:
    """The lane this process consumes, or ``None`` for all of them (one in-process worker, as in ``kumeo run``).

    ``explicit`` (the Worker's argument) wins, then ``$KUMEO_PARTITION``, then — only inside Kubernetes — the
    ordinal a StatefulSet pod's hostname ends with. A lane outside 0…N-1 is an error naming the agent.
    """
    count = int(partition.get("count") or 0)
    lane: int | None = explicit
    where = "the partition argument"
    if lane is None and os.environ.get(PARTITION_ENV, "").strip():
        text = os.environ[PARTITION_ENV].strip()
        where = f"${PARTITION_ENV}"
        if not text.isdigit():
            raise KumeoError(f"agent {agent!r}: {where} is {text!r}, not a lane number (0 to {count - 1})")
        lane = int(text)
    if lane is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        found = _ORDINAL.search(socket.gethostname())
        if found:
            lane, where = int(found.group(1)), "the pod's hostname"
    if lane is not None and not 0 <= lane < count:
        raise KumeoError(f"agent {agent!r} has {count} partitions (0 to {count - 1}), but {where} says lane {lane}; "
                         f"scale its StatefulSet to {count} replicas, or set {PARTITION_ENV} within range")
    return lane
