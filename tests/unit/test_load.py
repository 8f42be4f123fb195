"""``kumeo_iac.load``: one way to read a workflow, from a `.kumeo` file or a Python workflow, strict everywhere."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import kumeo_iac
from kumeo_iac import KumeoValidationError, load
from kumeo_iac._load import is_pulumi_program, load_file, load_text
from kumeo_iac.errors import PythonSpan, Severity
from kumeo_iac.spec import DataProcessor, NatsSource, Program, WorkflowSpec

ROOT = Path(__file__).resolve().parents[2]
FRAUD = ROOT / "examples" / "fraud_detection"

GOOD_KUMEO = """workflow Orders {
  source: NATS("orders.new")
  target: NATS("orders.out")
  agents: [
    DataProcessor(id: "clean", input: source, config: { required_fields: ["id"] })
  ]
}
"""

GOOD_PY = '''
from kumeo_iac.spec import NATS, DataProcessor, WorkflowSpec

clean = DataProcessor(id="clean", input="source", config={"required_fields": ["id"]})

WORKFLOW = WorkflowSpec(name="Orders", source=NATS("orders.new"), target=NATS("orders.out"), agents=[clean])
'''


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def errors_of(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(KumeoValidationError) as caught:
        load(path, **kwargs)  # type: ignore[arg-type]
    return [d.format() for d in caught.value.diagnostics if d.is_error]


def test_load_is_the_public_function() -> None:
    assert kumeo_iac.load is load


def test_a_kumeo_file_and_its_python_twin_load_to_the_same_program(tmp_path: Path) -> None:
    kumeo = load(write(tmp_path, "orders.kumeo", GOOD_KUMEO))
    python = load(write(tmp_path, "orders.py", GOOD_PY))
    assert isinstance(kumeo, Program) and isinstance(python, Program)
    assert kumeo == python
    assert python.path == str(tmp_path / "orders.py")


def test_the_fraud_example_loads_the_same_from_kumeo_and_python() -> None:
    assert load(FRAUD / "fraud_detection.py") == load(FRAUD / "fraud_detection.kumeo")


def test_an_unknown_kind_is_fatal_not_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "typo.kumeo", GOOD_KUMEO.replace("    DataProcessor(", '    LLMM("x", input: source),\n'
                                                                                "    DataProcessor("))
    assert errors_of(path) == [f"{path}:5:5: error: unknown agent kind 'LLMM' (did you mean 'LLM'?)"]


def test_a_validation_error_is_fatal(tmp_path: Path) -> None:
    path = write(tmp_path, "dangling.kumeo", GOOD_KUMEO.replace("input: source", "input: nowhere.output"))
    [error] = errors_of(path)
    assert error.startswith(f"{path}:5:") and "'nowhere.output'" in error


def test_a_syntax_error_is_a_validation_error_with_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.kumeo", "workflow W {\n  source: NATS(\n}\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:3:1: error:")


def test_a_missing_file_is_reported_at_its_path(tmp_path: Path) -> None:
    for name in ("absent.kumeo", "absent.py"):
        [error] = errors_of(tmp_path / name)
        assert error.startswith(f"{tmp_path / name}:1:1: error: cannot read file: No such file or directory")


def test_missing_model_files_are_warnings_unless_strict(tmp_path: Path) -> None:
    path = write(tmp_path, "model.kumeo", GOOD_KUMEO.replace(
        'DataProcessor(id: "clean", input: source, config: { required_fields: ["id"] })',
        'MLModel("models/absent.onnx", id: "score", input: source)'))
    loaded = load_file(path)
    assert loaded.ok and [d.severity for d in loaded.diagnostics] == [Severity.WARNING]
    assert load(path) == loaded.program
    [error] = errors_of(path, strict_files=True)
    assert "models/absent.onnx" in error


def test_a_python_diagnostic_points_at_the_line_that_built_the_bad_agent(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.py", '''
        from kumeo_iac.spec import LLM, NATS, WorkflowSpec

        first = LLM("ollama/llama3", id="explain", input="source", prompt="hi")
        second = LLM(
            "ollama/llama3",
            id="summary",
            input="nowhere.output",
            prompt="x",
        )

        WORKFLOW = WorkflowSpec(name="Bad", source=NATS("in"), target=NATS("out"), agents=[first, second])
    ''')
    [error] = errors_of(path)
    assert error.startswith(f"{path}:4:1: error: input 'nowhere.output' of agent 'summary'")


def test_a_python_agent_built_in_a_helper_module_points_into_that_module(tmp_path: Path) -> None:
    write(tmp_path, "agents_lib.py", '''
        from kumeo_iac.spec import DataProcessor


        def cleaner():
            return DataProcessor(id="clean", input="missing.output")
    ''')
    path = write(tmp_path, "flow.py", '''
        from agents_lib import cleaner

        from kumeo_iac.spec import NATS, WorkflowSpec

        WORKFLOW = WorkflowSpec(name="Flow", source=NATS("in"), target=NATS("out"), agents=[cleaner()])
    ''')
    [error] = errors_of(path)
    assert error.startswith(f"{tmp_path / 'agents_lib.py'}:5:5: error: input 'missing.output'")


def test_a_python_file_that_fails_to_run_is_reported_at_the_users_last_frame(tmp_path: Path) -> None:
    write(tmp_path, "helpers.py", "def ratio(a, b):\n    return a / b\n")
    path = write(tmp_path, "crash.py", '''
        from helpers import ratio

        from kumeo_iac.spec import NATS, WorkflowSpec

        SHARE = ratio(1, 0)
    ''')
    [error] = errors_of(path)
    assert error.startswith(f"{tmp_path / 'helpers.py'}:2:12: error: running the workflow failed: "
                            "ZeroDivisionError: division by zero")


def test_a_dsl_error_in_python_is_reported_at_its_call(tmp_path: Path) -> None:
    path = write(tmp_path, "dsl.py", '''
        from kumeo_iac.spec import LLM

        x = LLM("a", "b", "c", "d", "e", "f")
    ''')
    [error] = errors_of(path)
    assert error.startswith(f"{path}:3:5: error: running the workflow failed: LLM() takes at most")


def test_invalid_python_is_reported_at_the_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "syntax.py", "from kumeo_iac.spec import NATS\nWORKFLOW = (\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:2:") and "invalid Python" in error


def test_sys_exit_while_loading_is_an_error_not_an_exit(tmp_path: Path) -> None:
    path = write(tmp_path, "exits.py", "import sys\nsys.exit(3)\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:2:1: error: the workflow called sys.exit(3)")


def test_the_main_block_does_not_run_and_the_folder_is_importable(tmp_path: Path) -> None:
    write(tmp_path, "shared.py", "SUBJECT = 'orders.new'\n")
    path = write(tmp_path, "main_guard.py", "from shared import SUBJECT\n" + GOOD_PY.replace(
        'NATS("orders.new")', "NATS(SUBJECT)") + '''
if __name__ == "__main__":
    raise SystemExit("the __main__ block ran")
''')
    program = load(path)
    assert program.workflows[0].sources[0].address == "orders.new"


def test_every_module_level_workflow_makes_the_program_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, "two.py", '''
        from kumeo_iac.spec import NATS, DataProcessor, WorkflowSpec

        B = WorkflowSpec(name="B", source=NATS("b.in"), target=NATS("b.out"),
                         agents=[DataProcessor(id="p", input="source")])
        A = WorkflowSpec(name="A", source=NATS("a.in"), target=NATS("a.out"),
                         agents=[DataProcessor(id="p", input="source")])
        ALIAS = A
    ''')
    assert [wf.name for wf in load(path).workflows] == ["B", "A"]


def test_one_program_wins_and_a_workflow_left_out_of_it_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "program.py", GOOD_PY + '''
OTHER = WorkflowSpec(name="Other", source=NATS("o.in"), target=NATS("o.out"),
                     agents=[DataProcessor(id="p", input="source")])
PROGRAM = Program(workflows=[WORKFLOW])
'''.replace("Program(", "__import__('kumeo_iac').Program("))
    loaded = load_file(path)
    assert loaded.ok and [wf.name for wf in loaded.program.workflows] == ["Orders"]  # type: ignore[union-attr]
    [warning] = loaded.diagnostics
    assert warning.format().startswith(f"{path}:7:1: warning: OTHER (WorkflowSpec 'Other') is not part of the "
                                       "file's Program, so it is ignored")


def test_two_programs_are_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "programs.py", GOOD_PY + "\nfrom kumeo_iac.spec import Program\n"
                 "ONE = Program(workflows=[WORKFLOW])\nTWO = Program(workflows=[WORKFLOW])\n")
    [error] = errors_of(path)
    assert error.startswith(f"{path}:9:1: error: the file defines 2 Programs: ONE (line 8), TWO (line 9)")


def test_a_file_without_workflows_says_what_a_python_workflow_is(tmp_path: Path) -> None:
    [error] = errors_of(write(tmp_path, "empty.py", "X = 1\n"))
    assert "defines no workflow at module level" in error and "WORKFLOW = WorkflowSpec(" in error
    pulumi_program = write(tmp_path, "stack.py", "import pulumi\n\ndef program():\n    pass\n")
    assert is_pulumi_program(pulumi_program) and not is_pulumi_program(tmp_path / "empty.py")
    [error] = errors_of(pulumi_program)
    assert "looks like a Pulumi program" in error


def test_the_repository_pulumi_program_is_told_apart_from_a_workflow() -> None:
    assert is_pulumi_program(ROOT / "__main__.py")
    assert is_pulumi_program(ROOT / "examples" / "platform_stack" / "__main__.py")
    assert not is_pulumi_program(FRAUD / "fraud_detection.py")


def test_load_text_is_what_check_reports_for_the_same_content(tmp_path: Path) -> None:
    text = GOOD_KUMEO.replace("input: source", "input: nowhere.output")
    path = write(tmp_path, "same.kumeo", text)
    assert load_text(text, path, base_dir=tmp_path).diagnostics == load_file(path).diagnostics


# -- where Python specs were built ----------------------------------------------------------------------------


def test_python_nodes_record_the_file_and_line_of_their_call() -> None:
    agent = DataProcessor(id="p", input="source")
    line = agent.span.line if agent.span else 0
    workflow = WorkflowSpec(
        name="W",
        source=NatsSource("in"),
        agents=[agent],
    )
    assert isinstance(agent.span, PythonSpan) and agent.span.path == __file__
    assert workflow.span is not None and workflow.span.line == line + 2  # a call spread over lines: its first
    assert workflow.sources[0].span is not None and workflow.sources[0].span.line == line + 4


def test_nodes_kumeo_builds_itself_have_no_python_span() -> None:
    from kumeo_iac.lang import parse

    program = parse(GOOD_KUMEO, "orders.kumeo").program
    assert not any(isinstance(node.span, PythonSpan)
                   for node in (program, *program.workflows, *program.workflows[0].agents))


def _orders() -> Program:
    clean = DataProcessor(id="clean", input="source", config={"required_fields": ["id"]})
    monitor = __import__("kumeo_iac").Monitor(metrics=["events_in"])
    return Program(workflows=[WorkflowSpec(name="Orders", source=NatsSource("orders.new"),
                                           target=NatsSource("orders.out"), agents=[clean], monitor=monitor)])


def test_the_formatter_ignores_python_call_sites(monkeypatch: pytest.MonkeyPatch) -> None:
    from kumeo_iac.lang import format_program
    from kumeo_iac.spec import _base

    located = _orders()
    monkeypatch.setattr(_base, "caller_span", lambda: None)
    unlocated = _orders()
    assert located.workflows[0].monitor.span is not None  # type: ignore[union-attr]
    assert unlocated.workflows[0].monitor.span is None  # type: ignore[union-attr]
    assert format_program(located) == format_program(unlocated)
