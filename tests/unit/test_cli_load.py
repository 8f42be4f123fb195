"""Every command reads a workflow through ``kumeo_iac.load``: the same bad file gets the same error line from
each, and a Python workflow is accepted wherever a `.kumeo` file is."""

from __future__ import annotations

import filecmp
import textwrap
from pathlib import Path

import pytest

from kumeo_iac.cli import main

ROOT = Path(__file__).resolve().parents[2]
FRAUD = ROOT / "examples" / "fraud_detection"

TYPO_KUMEO = """workflow Orders {
  source: NATS("orders.new")
  target: NATS("orders.out")
  agents: [
    DataProcessor(id: "clean", input: source),
    LLMM("ollama/llama3", id: "explain", input: clean.output, prompt: "why")
  ]
}
"""

BAD_PY = """from kumeo_iac.spec import NATS, DataProcessor, WorkflowSpec

clean = DataProcessor(id="clean", input="source")
score = DataProcessor(
    id="score",
    input="cleen.output",
)

WORKFLOW = WorkflowSpec(name="Orders", source=NATS("orders.new"), target=NATS("orders.out"), agents=[clean, score])
"""

#: Every command that reads a workflow, as a user types it (PATH is filled in).
COMMANDS = {
    "check": ["check", "PATH"],
    "graph": ["graph", "PATH"],
    "render": ["render", "PATH", "--out", "OUT"],
    "run": ["run", "PATH", "--input", "-"],
    "preview": ["preview", "PATH", "--stack", "dev"],
    "up": ["up", "PATH", "--stack", "dev", "--yes"],
}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if ": error: " in line]


def argv(command: str, path: Path, out: Path) -> list[str]:
    return [str(path) if a == "PATH" else str(out) if a == "OUT" else a for a in COMMANDS[command]]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unknown_kind_is_the_same_error_everywhere(command: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "orders.kumeo"
    path.write_text(TYPO_KUMEO)
    code, _, err = run(argv(command, path, tmp_path / "out"), capsys)
    assert code == 1
    assert error_lines(err) == [f"{path}:6:5: error: unknown agent kind 'LLMM' (did you mean 'LLM'?)"]
    assert "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_bad_python_agent_is_the_same_error_at_its_line_everywhere(command: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "orders.py"
    path.write_text(BAD_PY)
    code, _, err = run(argv(command, path, tmp_path / "out"), capsys)
    assert code == 1
    assert error_lines(err) == [f"{path}:4:1: error: input 'cleen.output' of agent 'score' refers to nothing; "
                                "did you mean 'clean.output'?"]
    assert "Traceback" not in err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_python_file_that_crashes_is_reported_at_its_line_everywhere(command: str, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "crash.py"
    path.write_text("from kumeo_iac.spec import NATS\n\nLIMITS = {'a': 1}\nLIMIT = LIMITS['b']\n")
    code, _, err = run(argv(command, path, tmp_path / "out"), capsys)
    assert code == 1
    assert error_lines(err) == [f"{path}:4:9: error: running the workflow failed: KeyError: 'b' (the workflow file "
                                "is run to read its Specs; fix the error at this line)"]
    assert "internal error" not in err and "Traceback" not in err


def test_fmt_says_it_formats_kumeo_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "orders.py"
    path.write_text(BAD_PY)
    code, out, err = run(["fmt", str(path)], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"kumeo fmt: error: {path}: `kumeo fmt` works on .kumeo files only")
    assert path.read_text() == BAD_PY


def test_fmt_leaves_a_file_with_an_importer_error_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "orders.kumeo"
    path.write_text(TYPO_KUMEO.replace("  agents", "      agents"))  # would be re-indented if formatted
    code, _, err = run(["fmt", str(path)], capsys)
    assert code == 1
    assert error_lines(err) == [f"{path}:6:5: error: unknown agent kind 'LLMM' (did you mean 'LLM'?)"]
    assert "1 file with errors left as they are" in err
    assert path.read_text() == TYPO_KUMEO.replace("  agents", "      agents")


def test_the_dashboard_refuses_a_python_workflow_plainly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "orders.py"
    path.write_text(BAD_PY)
    code, _, err = run(["dashboard", str(path)], capsys)
    assert code == 2
    assert "the dashboard edits .kumeo files only" in err and f"kumeo check {path}" in err


def test_check_and_graph_accept_the_python_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["check", str(FRAUD / "fraud_detection.py")], capsys)
    assert (code, err) == (0, "checked 1 file: no problems\n")
    code, python_graph, _ = run(["graph", str(FRAUD / "fraud_detection.py")], capsys)
    assert code == 0
    code, kumeo_graph, _ = run(["graph", str(FRAUD / "fraud_detection.kumeo")], capsys)
    assert code == 0 and python_graph == kumeo_graph and "agent_explain" in python_graph


def test_render_of_the_python_example_writes_what_the_kumeo_file_does(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # The Python twin lives next to the same models and rules, so the objects must be the same, byte for byte.
    assert run(["render", str(FRAUD / "fraud_detection.py"), "--out", str(tmp_path / "py")], capsys)[0] == 0
    assert run(["render", str(FRAUD / "fraud_detection.kumeo"), "--out", str(tmp_path / "kumeo")], capsys)[0] == 0
    for part in ("kubernetes", "jetstream"):
        left, right = tmp_path / "py" / "fraud-detection" / part, tmp_path / "kumeo" / "fraud-detection" / part
        compared = filecmp.dircmp(left, right)
        assert not (compared.left_only or compared.right_only or compared.diff_files), part
        assert sorted(p.name for p in left.rglob("*")) == sorted(p.name for p in right.rglob("*"))
        for file in left.rglob("*.*"):
            assert file.read_bytes() == (right / file.relative_to(left)).read_bytes(), file


def test_run_help_no_longer_says_kumeo_only(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "render", "graph", "check", "preview", "up"):
        code, out, _ = run([command, "--help"], capsys)
        assert code == 0 and "Python workflow" in out, command


def test_a_pulumi_program_is_not_checked_as_a_workflow(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # `kumeo up stack.py` runs a Pulumi program as is: it is not read for module-level Specs first.
    monkeypatch.setattr("kumeo_iac.components._automation.pulumi_cli", lambda: None)
    path = tmp_path / "stack.py"
    path.write_text(textwrap.dedent("""
        import pulumi

        raise SystemExit("a Pulumi program must not be run by the check")
    """))
    code, _, err = run(["preview", str(path), "--stack", "dev"], capsys)
    assert code == 2 and "the `pulumi` CLI is not installed" in err
