"""The `kumeo` command: exit codes, where output goes, gcc-style diagnostics, startup time, no tracebacks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kumeo_iac.cli import main

ROOT = Path(__file__).resolve().parents[2]
DIAGNOSTIC = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning): (?P<msg>.+)$")
SUMMARY = re.compile(r"^checked \d+ files?: (no problems|\d+ errors?(, \d+ warnings?)?|\d+ warnings?)$")

VALID = """\
// A small valid workflow.
workflow W {
  source: NATS("in")
  target: NATS("out")
  agents: [
    DataProcessor(id: "clean", input: source),
    LLM("ollama/llama3", id: "explain", input: clean.output, prompt: "why {{amount}}", when: "amount > 10")
  ]
}
"""

INVALID = """\
workflow W {
  source: NATS("in")
  target: NATS("out")
  agents: [
    MLModel(id: "m", input: sourc),
    LLM("e/m", id: "l", input: m.output, prompt: "p", temprature: 1)
  ]
}
"""

WARNING_ONLY = """\
workflow W {
  source: NATS("in")
  target: NATS("out")
  agents: [MLModel("absent.onnx", id: "m", input: source)]
}
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


# -- kumeo check --------------------------------------------------------------------------------------------------


def test_check_valid_file(tmp_path, capsys):
    path = write(tmp_path, "ok.kumeo", VALID)
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert lines(err) == ["checked 1 file: no problems"]


def test_check_errors_go_to_stderr_gcc_style(tmp_path, capsys):
    path = write(tmp_path, "bad.kumeo", INVALID)
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    *diags, summary = lines(err)
    assert diags == [
        f"{path}:5:5: error: MLModel 'm' needs a model: add `model: …`",
        f"{path}:5:29: error: input 'sourc' of agent 'm' refers to nothing; did you mean 'source'?",
        f"{path}:6:67: error: LLM 'l' has no argument 'temprature'; did you mean 'temperature'?",
    ]
    assert summary == "checked 1 file: 3 errors"


def test_check_warnings_only_exit_zero_and_strict_makes_them_errors(tmp_path, capsys):
    path = write(tmp_path, "w.kumeo", WARNING_ONLY)
    assert main(["check", str(path)]) == 0
    err = capsys.readouterr().err
    first = lines(err)[0]
    m = DIAGNOSTIC.match(first)
    assert m and m["sev"] == "warning" and (m["line"], m["col"]) == ("4", "20") and "absent.onnx" in m["msg"]
    assert lines(err)[-1] == "checked 1 file: 1 warning"
    assert main(["check", "--strict", str(path)]) == 1
    assert ": error: " in capsys.readouterr().err
    assert main(["check", "-q", str(path)]) == 0
    assert capsys.readouterr().err == ""


def test_check_directories_recursively(tmp_path, capsys):
    write(tmp_path, "a/one.kumeo", VALID)
    write(tmp_path, "a/b/two.kumeo", INVALID)
    write(tmp_path, "a/.hidden/three.kumeo", INVALID)
    write(tmp_path, "a/notes.txt", "not kumeo")
    assert main(["check", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "two.kumeo:5:5: error:" in err and "three.kumeo" not in err
    assert lines(err)[-1] == "checked 2 files: 3 errors"


def test_check_path_problems_never_traceback(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["check", str(tmp_path / "empty"), str(tmp_path / "missing.kumeo")]) == 1
    err = capsys.readouterr().err
    assert f"kumeo: error: {tmp_path / 'empty'}: no .kumeo files in this directory" in err
    assert f"kumeo: error: {tmp_path / 'missing.kumeo'}: no such file or directory" in err
    assert "Traceback" not in err


def test_check_bad_utf8_and_unreadable_file(tmp_path, capsys):
    bad = write(tmp_path, "bin.kumeo", b'workflow W {\n  source: NATS("\xff")\n}\n')
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert re.search(rf"^{re.escape(str(bad))}:2:\d+: error: .*UTF-8", err, re.M)
    unreadable = write(tmp_path, "locked.kumeo", VALID)
    unreadable.chmod(0)
    try:
        code = main(["check", str(unreadable)])
        err = capsys.readouterr().err
        if os.geteuid() != 0:  # root reads anything
            assert code == 1 and re.search(rf"^{re.escape(str(unreadable))}:1:1: error: ", err, re.M)
        assert "Traceback" not in err
    finally:
        unreadable.chmod(0o644)


def test_check_syntax_error(tmp_path, capsys):
    path = write(tmp_path, "syn.kumeo", 'workflow W {\n  source: NATS("in"\n}\n')
    assert main(["check", str(path)]) == 1
    diag = lines(capsys.readouterr().err)[0]
    assert diag.startswith(f"{path}:3:1: error: ")


def test_internal_errors_exit_3_with_a_report_request(tmp_path, capsys, monkeypatch):
    import kumeo_iac.validate

    def boom(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(kumeo_iac.validate, "validate", boom)
    path = write(tmp_path, "ok.kumeo", VALID)
    assert main(["check", str(path)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("kumeo: internal error: ZeroDivisionError: boom")
    assert "please report it" in err and "Traceback" not in err


def test_check_as_a_subprocess(tmp_path):
    good = write(tmp_path, "ok.kumeo", VALID)
    bad = write(tmp_path, "bad.kumeo", INVALID)
    proc = subprocess.run([sys.executable, "-m", "kumeo_iac", "check", str(good), str(bad)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ""
    *diags, summary = lines(proc.stderr)
    assert all(DIAGNOSTIC.match(d) for d in diags) and len(diags) == 3
    assert summary == "checked 2 files: 3 errors"


# -- startup ------------------------------------------------------------------------------------------------------


def test_check_help_starts_fast_and_imports_nothing_heavy():
    code = ("import sys, time; t = time.perf_counter(); from kumeo_iac.cli import main; "
            "rc = main(['check', '--help']); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pulumi', 'nats', 'onnxruntime', 'pgmpy', 'rich', 'pydantic', 'lark', 'numpy')); "
            "print('HEAVY', heavy)")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert "usage: kumeo check" in proc.stdout
    assert "HEAVY []" in proc.stdout
    assert elapsed < 1.5, f"kumeo check --help took {elapsed:.2f} s"


@pytest.mark.parametrize("example", [None, "examples/claims_triage/claims_triage.kumeo"],
                         ids=["plain", "with-an-integration"])
def test_check_imports_no_deployment_stack(tmp_path, example):
    # A file with integrations imports the compiler's inliner only when a host agent reads a name no agent of
    # its own gives (the claims example's integration sends to a target).
    path = write(tmp_path, "ok.kumeo", VALID) if example is None else ROOT / example
    code = (f"import sys; from kumeo_iac.cli import main; rc = main(['check', {str(path)!r}]); "
            "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pulumi', 'nats', 'onnxruntime', 'pgmpy', 'rich')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


# -- dispatch -----------------------------------------------------------------------------------------------------


def test_no_command_and_bad_usage(capsys):
    assert main([]) == 2
    assert "usage: kumeo" in capsys.readouterr().err
    assert main(["check"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = out.split("positional arguments:")[1].split("options:")[0]
    for command in ("check", "fmt", "graph", "render", "run", "send", "tail", "preview", "up", "destroy",
                    "dashboard", "new", "docs"):
        assert re.search(rf"^    {command}\b", listed, re.MULTILINE), command


def test_help_of_run_and_docs(capsys):
    assert main(["run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "PATH a .kumeo file or a Python workflow (.py)" in out
    assert main(["docs", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--out FILE" in out and "--check" in out and "language reference" in out


def test_commands_of_missing_modules_fail_cleanly(monkeypatch, capsys):
    import kumeo_iac.cli as cli

    monkeypatch.setitem(cli.COMMANDS, "render", ("no_such_module", "run_render"))
    assert main(["render", "x.kumeo", "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert lines(err) == ["kumeo: error: `kumeo render` is not available in this version "
                          "(kumeo_iac._cli.no_such_module is missing)"]


def test_deploy_arguments_are_declared():
    from kumeo_iac.cli import build_parser

    args = build_parser().parse_args(["up", "w.kumeo", "--stack", "dev", "--config", "a=1", "--config", "b=x=y"])
    assert (args.path, args.stack, args.config) == ("w.kumeo", "dev", [("a", "1"), ("b", "x=y")])
    args = build_parser().parse_args(["new", "proj", "--dir", "d"])
    assert (args.name, args.dir) == ("proj", "d")
    args = build_parser().parse_args(["render", "w.kumeo", "--out", "o"])
    assert (args.path, args.out) == ("w.kumeo", "o")


# -- kumeo fmt ----------------------------------------------------------------------------------------------------

UGLY = ('workflow W {source: NATS("in")\n  target:NATS("out")   // keep me\n'
        ' agents:[DataProcessor(id:"a",input:source)]}\n')


def test_fmt_check_diff_and_rewrite(tmp_path, capsys):
    path = write(tmp_path, "u.kumeo", UGLY)
    assert main(["fmt", "--check", str(path)]) == 1
    assert f"would reformat {path}" in capsys.readouterr().err
    assert path.read_text() == UGLY
    assert main(["fmt", "--diff", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"--- {path} (original)") and "+" in out
    assert path.read_text() == UGLY
    assert main(["fmt", str(path)]) == 0
    formatted = path.read_text()
    assert formatted != UGLY and "// keep me" in formatted
    assert main(["fmt", "--check", str(path)]) == 0  # idempotent
    capsys.readouterr()


def test_fmt_reports_syntax_errors_and_leaves_the_file(tmp_path, capsys):
    path = write(tmp_path, "s.kumeo", 'workflow W {\n  source: NATS("in"\n}\n')
    assert main(["fmt", str(path)]) == 1
    assert lines(capsys.readouterr().err)[0].startswith(f"{path}:3:1: error: ")
    assert path.read_text() == 'workflow W {\n  source: NATS("in"\n}\n'


# -- kumeo graph --------------------------------------------------------------------------------------------------


def test_graph_mermaid_and_dot(tmp_path, capsys):
    path = write(tmp_path, "ok.kumeo", VALID)
    assert main(["graph", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("%% workflow W\nflowchart LR")
    assert "agent_clean --> agent_explain" in out
    assert main(["graph", "--format", "dot", "--workflow", "W", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith('digraph "W" {') and '"clean" -> "explain";' in out


def test_graph_unknown_workflow_and_invalid_file(tmp_path, capsys):
    path = write(tmp_path, "ok.kumeo", VALID)
    assert main(["graph", "--workflow", "WW", str(path)]) == 1
    assert "has no workflow or subworkflow 'WW'; did you mean 'W'?" in capsys.readouterr().err
    bad = write(tmp_path, "bad.kumeo", INVALID)
    assert main(["graph", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "flowchart LR" in out and f"{bad}:5:29: error:" in err


# -- docs ---------------------------------------------------------------------------------------------------------


def test_language_reference_is_up_to_date():
    from kumeo_iac._docs import DOC_PATH, language_reference

    assert DOC_PATH.read_text(encoding="utf-8") == language_reference(), (
        "docs/language.md is out of date: regenerate it with `kumeo docs --out docs/language.md`"
    )


def test_language_reference_covers_every_kind():
    from kumeo_iac._docs import language_reference
    from kumeo_iac.expr import FUNCTIONS
    from kumeo_iac.spec import AGENT_KINDS, CONTEXT_KINDS, SOURCE_KINDS, TARGET_KINDS

    text = language_reference()
    for kinds in (AGENT_KINDS, SOURCE_KINDS, TARGET_KINDS, CONTEXT_KINDS):
        for name in kinds:
            assert f"### `{name}`" in text
    for name in FUNCTIONS:
        assert f"| `{name}` |" in text


def test_docs_command_check(tmp_path, capsys):
    out = tmp_path / "language.md"
    assert main(["docs", "--out", str(out), "--check"]) == 1
    assert main(["docs", "--out", str(out)]) == 0
    assert main(["docs", "--out", str(out), "--check"]) == 0
    capsys.readouterr()


# -- robustness: random and mutated text never crashes the command ------------------------------------------------

SEEDS = [VALID, INVALID, WARNING_ONLY, UGLY] + [
    p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").glob("*/*.kumeo"))
]


@st.composite
def mutated_sources(draw):
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(0, 12)))
        fragment = draw(st.one_of(
            st.sampled_from(['"', "{", "}", "(", ")", "[", "]", ",", ":", "=", "??", "//", "/*", '"""', "\n",
                             "input: ", "id: \"a\"", "x.output", "config.", "LLM(", "source", "\\", "\x00", "é"]),
            st.text(max_size=6),
        ))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + fragment + text[i:]
        elif kind == "replace":
            text = text[:i] + fragment + text[j:]
        else:
            text = text[:i] + text[i:j] + text[i:]
    return text


def _assert_clean_check(path: Path, capsys) -> None:
    code = main(["check", str(path)])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    assert out == ""
    *diags, summary = lines(err)
    assert SUMMARY.match(summary), summary
    for d in diags:
        m = DIAGNOSTIC.match(d)
        assert m and m["path"] == str(path), d
        assert int(m["line"]) >= 1 and int(m["col"]) >= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated_sources())
def test_mutated_sources_only_yield_diagnostics(tmp_path, capsys, text):
    path = tmp_path / "fuzz.kumeo"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _assert_clean_check(path, capsys)



@pytest.mark.parametrize("name", ["\x1everdict", "ver\u2028dict", "verdict\r", "\x85verdict"])
def test_a_name_holding_a_line_break_or_control_character_stays_on_one_diagnostic_line(tmp_path, capsys, name):
    """Found by the property test above: `splitlines` breaks on \\x1e, \\x85 and \\u2028, which a name quoted in a
    message carried into the output raw, splitting one diagnostic over two lines."""
    seed = (ROOT / "examples" / "claims_triage" / "claims_triage.kumeo").read_text(encoding="utf-8")
    assert 'output: ["verdict"]' in seed
    path = tmp_path / "names.kumeo"
    path.write_text(seed.replace('output: ["verdict"]', f'output: ["{name}"]'), encoding="utf-8")
    _assert_clean_check(path, capsys)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_random_bytes_only_yield_diagnostics(tmp_path, capsys, data):
    path = tmp_path / "fuzz.kumeo"
    path.write_bytes(data)
    _assert_clean_check(path, capsys)
