"""DataNormalizer: scales numeric fields with fixed statistics (min-max or z-score).

Statistics are fixed in the settings rather than learned from traffic, so every replica scales the same value to
the same number, and a model trained on those statistics sees what it was trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime._agent import Emit, Event, EventRejected
from kumeo_iac.runtime.agents._common import KindAgent, is_missing, is_number

__all__ = ["DataNormalizerAgent"]

_METHODS: Final = {"min_max": "min_max", "minmax": "min_max", "z_score": "z_score", "zscore": "z_score"}
_STAT_NAMES: Final = {"min_max": ("min", "max"), "z_score": ("mean", "std")}


class DataNormalizerAgent(KindAgent):
    """Runs one DataNormalizer: ``(x - a) / b`` per configured field, optionally clipped."""

    kind_name = "DataNormalizer"
    options_in_config = True

    async def start(self) -> None:
        options = self.options()
        method = options.get("method", "min_max")
        if method not in _METHODS:
            raise KumeoRuntimeError(f"{self.label}: unknown method {method!r}; use 'min_max' or 'z_score'")
        self.method: str = _METHODS[method]
        fields = options.get("fields")
        if not isinstance(fields, Mapping) or not fields:
            first, second = _STAT_NAMES[self.method]
            raise KumeoRuntimeError(
                f"{self.label}: 'fields' must map each field to its statistics, e.g. "
                f"{{ amount: [{first}, {second}] }}"
            )
        # field → (offset, scale): normalized = (x - offset) / scale
        self.fields: dict[str, tuple[float, float]] = {
            str(name): self._statistics(str(name), stats) for name, stats in fields.items()
        }
        self.clip: tuple[float, float] | None = self._clip(options.get("clip", False))
        self.keep_original: bool = bool(options.get("keep_original", False))
        suffix = options.get("suffix", "_normalized")
        if not isinstance(suffix, str) or not suffix:
            raise KumeoRuntimeError(f"{self.label}: 'suffix' must be a non-empty string")
        self.suffix: str = suffix
        self.started = True

    async def process(self, event: Event) -> list[Emit]:
        self._require_started(getattr(self, "started", False))
        data = self.payload(event.data)
        for name, (offset, scale) in self.fields.items():
            if name not in data:
                continue  # absent fields are MissingValueHandler's business, not a reason to reject
            value = data[name]
            target = f"{name}{self.suffix}" if self.keep_original else name
            if is_missing(value):
                data[target] = None
                continue
            if not is_number(value):
                raise EventRejected(f"{self.label}: field '{name}' must be a number to normalize, got {value!r}")
            scaled = (value - offset) / scale
            if self.clip is not None:
                scaled = min(max(scaled, self.clip[0]), self.clip[1])
            data[target] = scaled
        return [Emit(data)]

    def _statistics(self, name: str, stats: Any) -> tuple[float, float]:
        first, second = _STAT_NAMES[self.method]
        if isinstance(stats, Mapping):
            pair: list[Any] = [stats.get(first), stats.get(second)]
        elif isinstance(stats, (list, tuple)) and len(stats) == 2:
            pair = list(stats)
        else:
            pair = [None, None]
        if not all(is_number(v) for v in pair):
            raise KumeoRuntimeError(
                f"{self.label}: field '{name}' needs [{first}, {second}] as two numbers "
                f"(or {{ {first}: …, {second}: … }}), got {stats!r}"
            )
        a, b = float(pair[0]), float(pair[1])
        if self.method == "min_max":
            if b <= a:
                raise KumeoRuntimeError(f"{self.label}: field '{name}': max ({b:g}) must be greater than min ({a:g})")
            return a, b - a
        if b <= 0:
            raise KumeoRuntimeError(f"{self.label}: field '{name}': std must be positive, got {b:g}")
        return a, b

    def _clip(self, clip: Any) -> tuple[float, float] | None:
        if clip is False or clip is None:
            return None
        if clip is True:
            if self.method == "min_max":
                return (0.0, 1.0)
            raise KumeoRuntimeError(f"{self.label}: for z_score, 'clip' is a number of deviations (e.g. 3)")
        if is_number(clip) and clip > 0:
            return (-float(clip), float(clip))
        if isinstance(clip, (list, tuple)) and len(clip) == 2 and all(is_number(v) for v in clip) and clip[0] < clip[1]:
            return (float(clip[0]), float(clip[1]))
        raise KumeoRuntimeError(f"{self.label}: 'clip' must be true, a positive number or [low, high], got {clip!r}")
