"""The worker's Prometheus metrics, kept in plain Python and rendered in the text exposition format.

A worker exposes a handful of series for one (workflow, agent) pair, so a dependency-free registry is enough and
keeps the base image small; the output follows the Prometheus text format 0.0.4 that KEDA and Prometheus scrape.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Final

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: Processing-time buckets in seconds: sub-millisecond pass-through hops up to LLM calls.
DEFAULT_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class WorkerMetrics:
    """The series of one worker: event counters, a processing-time histogram and the consumer lag."""

    def __init__(self, workflow: str, agent: str, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        self.workflow = workflow
        self.agent = agent
        self.events_in = 0
        self.events_out = 0
        self.events_failed = 0
        self.events_dead_lettered = 0
        self.consumer_lag = 0
        self._buckets = tuple(sorted(buckets))
        self._bucket_counts = [0] * len(self._buckets)
        self._sum = 0.0
        self._count = 0

    def observe_processing(self, seconds: float) -> None:
        """Record how long one event took from fetch to ack."""
        index = bisect.bisect_left(self._buckets, seconds)
        if index < len(self._bucket_counts):
            self._bucket_counts[index] += 1
        self._sum += seconds
        self._count += 1

    @property
    def processed(self) -> int:
        return self._count

    def render(self) -> str:
        """The Prometheus text exposition of every series."""
        labels = f'workflow="{_escape(self.workflow)}",agent="{_escape(self.agent)}"'
        lines: list[str] = []

        def counter(name: str, help_text: str, value: int) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} counter")
            lines.append(f"{name}{{{labels}}} {_number(value)}")

        counter("kumeo_events_in_total", "Events this agent received (every delivery).", self.events_in)
        counter("kumeo_events_out_total", "Messages this agent published to its outputs.", self.events_out)
        counter("kumeo_events_failed_total", "Processing attempts that failed (retried or dead-lettered).",
                self.events_failed)
        counter("kumeo_events_dead_lettered_total", "Events this agent sent to its dead-letter subject.",
                self.events_dead_lettered)

        name = "kumeo_processing_seconds"
        lines.append(f"# HELP {name} Time from fetching an event to acknowledging it.")
        lines.append(f"# TYPE {name} histogram")
        cumulative = 0
        for bound, count in zip(self._buckets, self._bucket_counts, strict=True):
            cumulative += count
            lines.append(f'{name}_bucket{{{labels},le="{_number(bound)}"}} {cumulative}')
        lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {self._count}')
        lines.append(f"{name}_sum{{{labels}}} {_number(self._sum)}")
        lines.append(f"{name}_count{{{labels}}} {self._count}")

        lines.append("# HELP kumeo_consumer_lag Messages waiting in this agent's consumers (num_pending).")
        lines.append("# TYPE kumeo_consumer_lag gauge")
        lines.append(f"kumeo_consumer_lag{{{labels}}} {_number(self.consumer_lag)}")
        return "\n".join(lines) + "\n"
