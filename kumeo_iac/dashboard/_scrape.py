"""Reading agents' ``/metrics`` (the Prometheus text the worker renders) into the numbers the live graph shows.

Only the Kumeo series are read (``kumeo_events_*_total``, ``kumeo_processing_seconds``, ``kumeo_consumer_lag``);
replicas of one agent are summed. Percentiles are estimated like PromQL's ``histogram_quantile`` (linear
interpolation inside the bucket), from the change since the previous scrape when there was one, so the figure is
"latency now" rather than "since the pod started".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["AgentSample", "parse_metrics", "quantile"]

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_COUNTERS = {
    "kumeo_events_in_total": "events_in",
    "kumeo_events_out_total": "events_out",
    "kumeo_events_failed_total": "failed",
    "kumeo_events_dead_lettered_total": "dead_lettered",
}


class AgentSample:
    """The Kumeo series of one agent at one moment (summed over the scraped replicas)."""

    def __init__(self) -> None:
        self.counters: dict[str, float] = dict.fromkeys(_COUNTERS.values(), 0.0)
        self.buckets: dict[float, float] = {}
        self.count = 0.0
        self.sum = 0.0
        self.lag = 0.0

    def add(self, other: AgentSample) -> None:
        for k, v in other.counters.items():
            self.counters[k] = self.counters.get(k, 0.0) + v
        for le, v in other.buckets.items():
            self.buckets[le] = self.buckets.get(le, 0.0) + v
        self.count += other.count
        self.sum += other.sum
        self.lag = max(self.lag, other.lag)  # every replica reports the same consumers' num_pending


def _value(text: str) -> float:
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    return float(text)


def parse_metrics(text: str, workflow: str | None = None) -> dict[str, AgentSample]:
    """The Kumeo series in a Prometheus text exposition, by agent (only ``workflow``'s when given)."""
    samples: dict[str, AgentSample] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        name, label_text, value_text = match.groups()
        if not name.startswith("kumeo_"):
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _LABEL.findall(label_text or "")}
        if workflow is not None and labels.get("workflow") not in (None, workflow):
            continue
        agent = labels.get("agent")
        if agent is None:
            continue
        try:
            value = _value(value_text)
        except ValueError:
            continue
        sample = samples.setdefault(agent, AgentSample())
        if name in _COUNTERS:
            sample.counters[_COUNTERS[name]] += value
        elif name == "kumeo_processing_seconds_bucket" and "le" in labels:
            le = _value(labels["le"])
            sample.buckets[le] = sample.buckets.get(le, 0.0) + value
        elif name == "kumeo_processing_seconds_count":
            sample.count += value
        elif name == "kumeo_processing_seconds_sum":
            sample.sum += value
        elif name == "kumeo_consumer_lag":
            sample.lag = max(sample.lag, value)
    return samples


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """``histogram_quantile(q, …)`` over cumulative buckets ``{le: count}``; None without observations."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return previous_bound  # above the highest finite bucket: its bound is the best estimate
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (count - previous_count)
        previous_bound, previous_count = bound, count
    return previous_bound


def bucket_delta(now: Mapping[float, float], before: Mapping[float, float] | None) -> dict[float, float]:
    """The observations between two scrapes (a counter reset, e.g. a restarted pod, means "everything now")."""
    if not before:
        return dict(now)
    delta = {le: now[le] - before.get(le, 0.0) for le in now}
    if any(v < 0 for v in delta.values()):
        return dict(now)
    return delta


def latency_summary(buckets: Mapping[float, float]) -> dict[str, Any] | None:
    if not buckets or max(buckets.values(), default=0) <= 0:
        return None
    return {f"p{int(q * 100)}": quantile(q, buckets) for q in (0.5, 0.95, 0.99)}


def sum_samples(samples: Iterable[AgentSample]) -> AgentSample:
    total = AgentSample()
    for s in samples:
        total.add(s)
    return total
