"""Resolution of inputs, routes and sinks into the agent graph, cycles and order."""

from __future__ import annotations

from kumeo_iac.graph import NodeRef, build_graph
from kumeo_iac.spec import (
    LLM,
    NATS,
    DataProcessor,
    DecisionMatrix,
    MLModel,
    Ref,
    Router,
    SubworkflowSpec,
    WorkflowSpec,
)


def test_seed_form_flows_from_source_through_agents_to_the_target() -> None:
    llm = LLM("ollama/llama3", prompt="p")
    model = MLModel("m.onnx", input=llm.output)
    policy = DecisionMatrix("p.dmx", input=model.output)
    g = build_graph(WorkflowSpec(name="W", source=NATS("tx"), target=NATS("alerts"), agents=[llm, model, policy]))
    assert g.unresolved == []
    assert g.topological_order() == ["llm", "ml_model", "decision_matrix"]
    assert g.nodes["llm"].inputs[0].node == NodeRef("source", "tx")
    assert g.nodes["decision_matrix"].targets == [NodeRef("target", "alerts")]
    assert g.nodes["llm"].targets == []


def upstream_style() -> WorkflowSpec:
    return WorkflowSpec(
        name="W",
        source=NATS("in"),
        target=[NATS("alerts.high"), NATS("done")],
        agents=[
            DataProcessor(id="validate", input="source", output="validated.tx"),
            MLModel("m.onnx", id="score", input="validated.tx/features", output="scores"),
            Router(
                id="route",
                input={"s": "scores", "v": "validate.output ?? source"},
                rules={"s.x > 1": "target.alerts.high", "s.x > 0": "score", "default": "target.done"},
            ),
        ],
    )


def test_channels_fields_expressions_and_joins_resolve() -> None:
    g = build_graph(upstream_style())
    assert g.unresolved == []
    score = g.nodes["score"].inputs[0]
    assert (score.node, score.field) == (NodeRef("agent", "validate"), ("features",))
    route_inputs = {(b.part, b.node.key) for b in g.nodes["route"].inputs}
    assert route_inputs == {("s", "score"), ("v", "validate"), ("v", "source:in")}
    assert g.nodes["route"].is_join


def test_router_rules_become_routes_to_targets_and_agents() -> None:
    routes = build_graph(upstream_style()).nodes["route"].routes
    assert [(r.condition, r.destination.key) for r in routes] == [
        ("s.x > 1", "target:alerts.high"),
        ("s.x > 0", "score"),
        (None, "target:done"),
    ]


def test_a_route_back_upstream_is_a_cycle() -> None:
    assert build_graph(upstream_style()).cycles() == [["route", "score"]]


def test_unresolved_references_are_reported_with_candidates() -> None:
    wf = WorkflowSpec(
        name="W",
        source=NATS("in"),
        target=NATS("out"),
        agents=[
            DataProcessor(id="a", input="nothing.here"),
            Router(id="r", input=Ref(path=("a", "output")), rules={"default": "target.nowhere"}),
        ],
    )
    g = build_graph(wf)
    assert [(u.agent, u.written, u.what) for u in g.unresolved] == [
        ("a", "nothing.here", "input"),
        ("r", "target.nowhere", "route"),
    ]
    assert "target.out" in g.unresolved[1].candidates


def test_ambiguous_reference_by_kind_is_unresolved_with_the_kind_named() -> None:
    wf = WorkflowSpec(
        name="W",
        source=NATS("in"),
        agents=[LLM("a/b", prompt="x"), LLM("a/b", prompt="y"), MLModel("m.onnx", input=Ref(path=("LLM", "output")))],
    )
    (u,) = build_graph(wf).unresolved
    assert u.ambiguous == ("LLM",)


def test_unreachable_agents_and_cycles() -> None:
    wf = WorkflowSpec(
        name="W",
        source=NATS("in"),
        agents=[
            DataProcessor(id="ok"),
            DataProcessor(id="c1", input="c2.output"),
            DataProcessor(id="c2", input="c1.output"),
        ],
    )
    g = build_graph(wf)
    assert g.reachable_from_sources() == {"ok"}
    assert g.cycles() == [["c1", "c2"]]
    assert g.topological_order() == ["ok", "c1", "c2"]


def test_subworkflow_inputs_resolve_and_count_as_sources() -> None:
    sw = SubworkflowSpec(
        name="S",
        inputs=["claim"],
        outputs=["verdict"],
        agents=[DataProcessor(id="x", input=Ref(path=("input", "claim")))],
    )
    g = build_graph(sw)
    assert g.unresolved == []
    assert g.nodes["x"].inputs[0].node == NodeRef("input", "claim")
    assert g.reachable_from_sources() == {"x"}


def test_mermaid_and_dot_name_every_node_and_edge() -> None:
    g = build_graph(upstream_style())
    mermaid, dot = g.to_mermaid(), g.to_dot()
    assert mermaid.startswith("flowchart LR")
    for agent in ("validate", "score", "route"):
        assert f"agent_{agent}" in mermaid and f'"{agent}"' in dot
    assert "agent_route -.-> target_alerts_high" in mermaid
    assert '"route" -> "target:done" [style=dashed];' in dot
