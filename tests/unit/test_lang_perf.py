"""The importer is fast enough for `kumeo check` on big workflows, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

from kumeo_iac.lang import format_text, parse


def big_workflow(agents: int) -> str:
    """A generated workflow with a chain of ``agents`` agents, each with several arguments and a config object."""
    lines = ["workflow Big {", '  source: NATS("in")', '  target: NATS("out")', "  agents: ["]
    for i in range(agents):
        previous = f"a{i - 1}.output" if i else "source"
        lines.append(
            f'    DataProcessor(id: "a{i}", input: {previous}, output: "ch.{i}", when: "amount > {i}", '
            f'config: {{ fields: ["x", "y"], scale: {i}.5, name: "n{i}" }}),'
        )
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def test_a_500_agent_workflow_parses_well_within_the_check_budget() -> None:
    text = big_workflow(500)
    parse(text)  # the grammar is compiled on first use; `kumeo check` pays that once (~20 ms)
    best = min(_timed(lambda: parse(text)) for _ in range(3))
    result = parse(text)
    assert len(result.program.workflows[0].agents) == 500 and result.diagnostics == []
    # `kumeo check` has 1 s for parse + validate; the parser may use at most half of it even on a slow machine.
    assert best < 0.5, f"parsing 500 agents took {best:.3f}s"


def test_formatting_500_agents_is_quick_and_stable() -> None:
    text = format_text(big_workflow(500))
    assert _timed(lambda: format_text(text)) < 1.0
    assert format_text(text) == text


def test_importing_the_language_does_not_pull_in_heavy_stacks() -> None:
    code = (
        "import sys, kumeo_iac.lang; "
        "heavy = [m for m in ('pulumi', 'nats', 'onnxruntime', 'pgmpy', 'httpx') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
