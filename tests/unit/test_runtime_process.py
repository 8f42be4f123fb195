"""The runtime entrypoints (agent worker and gateway) share one runner: options, Plan lookup, errors, exit status."""

from __future__ import annotations

import json

import pytest

from kumeo_iac.compile import Plan, compile_program
from kumeo_iac.errors import KumeoError
from kumeo_iac.runtime.__main__ import main as worker_main
from kumeo_iac.runtime._process import pick_workflow
from kumeo_iac.runtime.io.__main__ import main as gateway_main
from kumeo_iac.spec import NATS, DataProcessor, Program, WorkflowSpec


def workflow(name: str, *agents: str) -> WorkflowSpec:
    return WorkflowSpec(name=name, sources=[NATS(f"{name.lower()}.in")], targets=[NATS(f"{name.lower()}.out")],
                        agents=[DataProcessor(id=a) for a in agents])


def plan_of(*workflows: WorkflowSpec) -> Plan:
    return compile_program(Program(workflows=list(workflows)))


def test_a_named_workflow_is_found_by_name_or_slug_and_a_wrong_name_lists_the_others() -> None:
    plan = plan_of(workflow("Orders", "clean"), workflow("Claims", "triage"))
    assert pick_workflow(plan, "plan.json", "Claims").name == "Claims"
    assert pick_workflow(plan, "plan.json", "orders").name == "Orders"
    with pytest.raises(KumeoError, match=r"^plan.json: no workflow 'Nope' \(workflows: Orders, Claims\)$"):
        pick_workflow(plan, "plan.json", "Nope")


def test_an_agent_picks_the_workflow_that_holds_it() -> None:
    plan = plan_of(workflow("Orders", "clean"), workflow("Claims", "triage", "clean2"))
    assert pick_workflow(plan, "p", None, agent="triage").name == "Claims"
    with pytest.raises(KumeoError, match="no workflow has an agent 'ghost'"):
        pick_workflow(plan, "p", None, agent="ghost")
    both = plan_of(workflow("Orders", "clean"), workflow("Claims", "clean"))
    with pytest.raises(KumeoError, match=r"agent 'clean' is in several workflows \(Orders, Claims\); pass --workflow"):
        pick_workflow(both, "p", None, agent="clean")


def test_without_a_name_a_plan_needs_exactly_one_workflow() -> None:
    single = plan_of(workflow("Orders", "clean"))
    assert pick_workflow(single, "p", None).name == "Orders"
    assert pick_workflow(single, "p", None, agent="missing").name == "Orders"  # the agent lookup names it next
    with pytest.raises(KumeoError, match=r"the Plan has 2 workflows \(Orders, Claims\); pass --workflow"):
        pick_workflow(plan_of(workflow("Orders", "a"), workflow("Claims", "b")), "p", None)


@pytest.mark.parametrize(("main", "name"), [(worker_main, "runtime"), (gateway_main, "gateway")])
def test_both_entrypoints_report_a_bad_plan_in_one_line_and_exit_1(main, name, tmp_path, capsys) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text(json.dumps({"not": "a plan"}))
    assert main(["--plan", str(bad), "--agent", "a"] if name == "runtime" else ["--plan", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"kumeo {name}: error: {bad} is not a Kumeo Plan")


@pytest.mark.parametrize(("main", "name"), [(worker_main, "runtime"), (gateway_main, "gateway")])
def test_both_entrypoints_refuse_an_unknown_workflow_the_same_way(main, name, tmp_path, capsys) -> None:
    path = tmp_path / "plan.json"
    path.write_text(plan_of(workflow("Orders", "clean")).to_json())
    args = ["--plan", str(path), "--workflow", "Nope", "--health-port", "-1"]
    assert main([*args, "--agent", "clean"] if name == "runtime" else args) == 1
    assert capsys.readouterr().err.strip() == (
        f"kumeo {name}: error: {path}: no workflow 'Nope' (workflows: Orders)")
