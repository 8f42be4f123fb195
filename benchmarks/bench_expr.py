"""How fast Kumeo expressions compile and evaluate, against hand-written Python lambdas doing the same work.

Run with ``.venv/bin/python benchmarks/bench_expr.py``. The lambda is the floor any closure compiler can reach;
the ratio says what the language's safety (null-tolerant paths, JSON equality, kind checks) costs per event.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kumeo_iac.expr import compile_expression

EVENT: dict[str, Any] = {
    "amount": 1500,
    "risk_score": 0.82,
    "input": {
        "urgency": "high",
        "country": "ES",
        "patient_id": "p-1",
        "findings": ["x"],
        "user": {"id": 7},
    },
    "config": {"risk_thresholds": {"high": 0.8, "low": 0.2}},
    "reviewed": {"analysis": {"score": 3}},
}


def _get(data: Mapping[str, Any], *keys: str) -> Any:
    value: Any = data
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


CASES: list[tuple[str, Callable[[Mapping[str, Any]], Any]]] = [
    ("amount > 1000", lambda d: d.get("amount") is not None and d["amount"] > 1000),
    (
        "risk_score >= config.risk_thresholds.high",
        lambda d: d["risk_score"] >= d["config"]["risk_thresholds"]["high"],
    ),
    (
        "input.urgency in ['low', 'medium', 'high', 'critical']",
        lambda d: _get(d, "input", "urgency") in ("low", "medium", "high", "critical"),
    ),
    (
        "all(field in input for field in ['patient_id', 'findings'])",
        lambda d: all(field in d["input"] for field in ("patient_id", "findings")),
    ),
    ("reviewed.analysis?.review_notes ?? ''", lambda d: _get(d, "reviewed", "analysis", "review_notes") or ""),
    (
        "amount > 1000 && lower(input.country) not in ['fr', 'de'] || is_null(input.user)",
        lambda d: (d["amount"] > 1000 and d["input"]["country"].lower() not in ("fr", "de"))
        or d["input"].get("user") is None,
    ),
]


def _per_second(fn: Callable[[], Any], seconds: float = 0.3) -> float:
    """Calls per second of fn, measured over batches until `seconds` of wall time have passed; best of 3."""
    best = 0.0
    for _ in range(3):
        calls = 0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < seconds / 3:
            for _ in range(1000):
                fn()
            calls += 1000
            elapsed = time.perf_counter() - start
        best = max(best, calls / elapsed)
    return best


def _compile_time_us(text: str, repeat: int = 50) -> float:
    uncached = compile_expression.__wrapped__  # type: ignore[attr-defined]
    uncached(text)  # build the parser once, as a process does on its first expression
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        uncached(text)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def main() -> None:
    start = time.perf_counter()
    compile_expression.__wrapped__("1")  # type: ignore[attr-defined]
    print(f"parser build + first compile: {(time.perf_counter() - start) * 1e3:.1f} ms")
    print(f"cached compile_expression lookup: {1e9 / _per_second(lambda: compile_expression('amount > 1000')):.0f} ns")
    print()
    header = f"{'expression':<62} {'compile':>9} {'kumeo ev/s':>12} {'lambda ev/s':>12} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    ratios = []
    for text, baseline in CASES:
        expression = compile_expression(text)
        assert expression.evaluate(EVENT) == baseline(EVENT), text
        evaluate = expression.evaluate
        # both lambdas run inside _per_second, in this iteration: the late binding B023 warns of cannot bite
        ours = _per_second(lambda: evaluate(EVENT))  # noqa: B023
        theirs = _per_second(lambda: baseline(EVENT))  # noqa: B023
        ratios.append(theirs / ours)
        shown = text if len(text) <= 60 else text[:59] + "…"
        print(f"{shown:<62} {_compile_time_us(text):>7.0f}µs {ours:>12,.0f} {theirs:>12,.0f} {theirs / ours:>5.1f}x")
    print()
    print(f"geometric mean slowdown vs. hand-written lambdas: {statistics.geometric_mean(ratios):.1f}x")


if __name__ == "__main__":
    main()
