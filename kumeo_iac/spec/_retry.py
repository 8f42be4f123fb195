"""An agent's ``retry``: how often a failed event is tried again and how long to wait in between.

``retry: 2`` or ``retry: { attempts: 3, backoff: "1s", factor: 2 }``. One model, read by validation (which reports
every problem at its key) and by compile (which turns it into ``max_deliver`` and the consumer's backoff).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from kumeo_iac.spec._durations import Duration, parse_duration
from kumeo_iac.spec._problems import Problem, problems_in

__all__ = ["DEFAULT_BACKOFF_SECONDS", "DEFAULT_RETRY_ATTEMPTS", "MAX_RETRY_ATTEMPTS", "RetrySettings",
           "retry_policy", "retry_problems"]

DEFAULT_RETRY_ATTEMPTS: Final = 3
DEFAULT_BACKOFF_SECONDS: Final = 1.0
MAX_RETRY_ATTEMPTS: Final = 100
_EXPONENTIAL: Final = ("exponential", "exp")
_FIXED: Final = ("fixed", "constant", "linear")
_SHAPE: Final = (f"must be a whole number of retries (0 to {MAX_RETRY_ATTEMPTS}) or "
                 '`{ attempts: 3, backoff: "1s" }`')


class RetrySettings(BaseModel):
    """The object form of ``retry``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    attempts: int = Field(default=DEFAULT_RETRY_ATTEMPTS, ge=0, le=MAX_RETRY_ATTEMPTS,
                          description="Retries after the first try; then the event is dead-lettered.")
    backoff: Duration | list[Duration] | Literal["exponential", "exp", "fixed", "constant", "linear"] = Field(
        default="1s", description="The first wait (a duration), a list of waits (the last repeats), or `exponential` "
                          "(1s, 2s, 4s…) / `fixed` (1s each time).")
    factor: float = Field(default=2.0, gt=0, description="How much each wait grows over the one before (1: fixed).")


def retry_problems(value: Any) -> list[Problem]:
    """Everything wrong with a written ``retry`` (empty when it is fine)."""
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, (int, float, dict)):
        return [Problem((), f"{_show(value)} {_SHAPE}")]
    if isinstance(value, (int, float)):
        if value != int(value) or not 0 <= value <= MAX_RETRY_ATTEMPTS:
            return [Problem((), f"{_show(value)} {_SHAPE}")]
        return []
    return problems_in(RetrySettings, value)


def retry_policy(value: Any) -> tuple[int, list[float]]:
    """``(attempts, waits in seconds before each retry)``; :class:`ValueError` naming the first problem."""
    problems = retry_problems(value)
    if problems:
        first = problems[0]
        raise ValueError(f"retry{'.' + first.dotted if first.path else ''} {first.message}")
    if value is None:
        settings = RetrySettings()
    elif isinstance(value, (int, float)):
        settings = RetrySettings(attempts=int(value))
    else:
        settings = RetrySettings.model_validate({str(k): v for k, v in value.items()})
    attempts, backoff, factor = settings.attempts, settings.backoff, settings.factor
    if isinstance(backoff, list):
        waits = [parse_duration(v) for v in backoff] or [DEFAULT_BACKOFF_SECONDS]
        return attempts, [float(waits[min(i, len(waits) - 1)]) for i in range(attempts)]
    base = DEFAULT_BACKOFF_SECONDS
    if isinstance(backoff, str) and backoff.strip().lower() in _FIXED:
        factor = 1.0
    elif not (isinstance(backoff, str) and backoff.strip().lower() in _EXPONENTIAL):
        base = parse_duration(backoff)
    return attempts, [float(round(base * factor**i, 3)) for i in range(attempts)]


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)
