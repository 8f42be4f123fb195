"""Our examples: they check clean, and the Python program says the same as the `.kumeo` file."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from kumeo_iac.lang import format_text, parse_file
from kumeo_iac.validate import validate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("**/*.kumeo")), ids=lambda p: p.name)
def test_every_example_is_valid_with_its_files_present(path: Path) -> None:
    result = parse_file(path)
    assert result.diagnostics == []
    problems = validate(result.program, strict_files=True)
    assert [d.format() for d in problems] == []


def test_the_python_fraud_detection_program_equals_the_kumeo_file() -> None:
    from_kumeo = parse_file(EXAMPLES / "fraud_detection" / "fraud_detection.kumeo").program
    from_python = runpy.run_path(str(EXAMPLES / "fraud_detection" / "fraud_detection.py"))["PROGRAM"]
    assert from_python == from_kumeo
    # and equality is not vacuous: one changed argument breaks it
    from_python.workflows[0].agents[1].timeout = "6s"
    assert from_python != from_kumeo


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("**/*.kumeo")), ids=lambda p: p.name)
def test_every_example_is_formatted(path: Path) -> None:
    """`kumeo fmt --check` passes: the examples are written in the canonical style."""
    text = path.read_text(encoding="utf-8")
    assert format_text(text, str(path)) == text
