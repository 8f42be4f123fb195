"""MissingValueHandler: fills (or drops) missing fields by a strategy: mean, median, constant or drop.

A field is missing when it is absent or null (or a float NaN). Mean and median come from fixed ``stats`` when the
settings give them (deterministic, the same on every replica), and otherwise from a rolling window of the last
``window`` (default 1000) numeric values this agent has seen per field. That window lives in one worker process:
replicas do not share it and it starts empty after a restart; until a field has history, ``value`` is used if
given, else the field is left missing.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Mapping
from typing import Any, Final

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime._agent import Emit, Event
from kumeo_iac.runtime.agents._common import KindAgent, is_missing, is_number

__all__ = ["DEFAULT_WINDOW", "MissingValueHandlerAgent"]

#: How many recent values per field the rolling mean/median uses.
DEFAULT_WINDOW: Final = 1000
#: How many distinct fields one agent tracks when ``fields`` is not given (bounds memory on odd payloads).
MAX_TRACKED_FIELDS: Final = 256

_STRATEGIES: Final = {
    "mean_imputation": "mean",
    "mean": "mean",
    "median_imputation": "median",
    "median": "median",
    "constant": "constant",
    "drop": "drop",
}
_UNSET: Final = object()


class MissingValueHandlerAgent(KindAgent):
    """Runs one MissingValueHandler over the fields it is given (or every null field)."""

    kind_name = "MissingValueHandler"

    async def start(self) -> None:
        options = self.options()
        strategy = options.get("strategy")
        if strategy not in _STRATEGIES:
            raise KumeoRuntimeError(
                f"{self.label}: unknown strategy {strategy!r}; use mean_imputation, median_imputation, constant or drop"
            )
        self.strategy: str = _STRATEGIES[strategy]
        fields = options.get("fields")
        if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)):
            raise KumeoRuntimeError(f"{self.label}: 'fields' must be a list of field names")
        self.fields: list[str] | None = fields
        self.value: Any = options.get("value", _UNSET)
        if self.strategy == "constant" and self.value is _UNSET:
            raise KumeoRuntimeError(f"{self.label}: the constant strategy needs a 'value'")

        stats = options.get("stats") or {}
        if not isinstance(stats, Mapping):
            raise KumeoRuntimeError(f"{self.label}: 'stats' must map fields to {{ mean: …, median: … }}")
        self.stats: dict[str, float] = {}
        if self.strategy in ("mean", "median"):
            for name, entry in stats.items():
                number = entry.get(self.strategy) if isinstance(entry, Mapping) else entry
                if not is_number(number):
                    raise KumeoRuntimeError(
                        f"{self.label}: stats for '{name}' need a numeric '{self.strategy}', got {entry!r}"
                    )
                self.stats[str(name)] = number

        window = options.get("window", DEFAULT_WINDOW)
        if not (isinstance(window, int) and not isinstance(window, bool) and window > 0):
            raise KumeoRuntimeError(f"{self.label}: 'window' must be a positive integer, got {window!r}")
        self.window: int = window
        self.history: dict[str, collections.deque[float]] = {}
        self.started = True

    async def process(self, event: Event) -> list[Emit]:
        self._require_started(getattr(self, "started", False))
        data = self.payload(event.data)
        if self.fields is not None:
            targets = list(self.fields)
        else:
            targets = list(dict.fromkeys([*self.stats, *(k for k, v in data.items() if is_missing(v))]))

        if self.strategy in ("mean", "median"):
            self._observe(data)
        for name in targets:
            if not is_missing(data.get(name)):
                continue
            if self.strategy == "drop":
                data.pop(name, None)
            elif self.strategy == "constant":
                data[name] = self.value
            else:
                filled = self._statistic(name)
                if filled is not _UNSET:
                    data[name] = filled
        return [Emit(data)]

    def _observe(self, data: Mapping[str, Any]) -> None:
        """Remember this event's real (not imputed) values for the rolling statistics."""
        names = self.fields if self.fields is not None else list(data)
        for name in names:
            value = data.get(name)
            if not is_number(value) or is_missing(value):
                continue
            window = self.history.get(name)
            if window is None:
                if len(self.history) >= MAX_TRACKED_FIELDS:
                    continue
                window = self.history[name] = collections.deque(maxlen=self.window)
            window.append(value)

    def _statistic(self, name: str) -> Any:
        if name in self.stats:
            return self.stats[name]
        window = self.history.get(name)
        if window:
            return statistics.fmean(window) if self.strategy == "mean" else statistics.median(window)
        return self.value
