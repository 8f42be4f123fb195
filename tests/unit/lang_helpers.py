"""Shared material for the `.kumeo` language tests: the corpus location, the seed program and Hypothesis strategies.

The upstream corpus is read where it lives (next to the repository); it is never copied into the repo.
"""

from __future__ import annotations

import keyword
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from kumeo_iac.spec import (
    AGENT_KINDS,
    LLM,
    NATS,
    BayesianNetwork,
    BayesianNetworkContext,
    Call,
    Database,
    DecisionMatrix,
    Deployment,
    HttpSource,
    HttpTarget,
    IntegrationSpec,
    KnowledgeBase,
    MLModel,
    Monitor,
    NatsTarget,
    Program,
    Ref,
    Resources,
    Scaling,
    SubworkflowSpec,
    WorkflowSpec,
)

CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "upstream"

SEED_TEXT = """workflow FraudDetection {
  source: NATS("transactions")
  target: NATS("alerts")
  context: BayesianNetwork("risk.bn")
  agents: [
    LLM("ollama/llama3", prompt="Classify {{data}} as fraud? Context: {{context}}"),
    MLModel("isolation_forest.pkl", input=LLM.output),
    DecisionMatrix("policy.dmx", input=MLModel.output)
  ]
}
"""


def corpus_file(name: str) -> Path:
    """One upstream corpus file, or a clean skip when the corpus is not on this machine."""
    path = CORPUS_DIR / name
    if not path.is_file():
        pytest.skip(f"upstream corpus not available at {CORPUS_DIR}")
    return path


def corpus_files() -> list[Path]:
    return sorted(CORPUS_DIR.glob("*.kumeo")) if CORPUS_DIR.is_dir() else []


def seed_program_in_python() -> Program:
    """The seed's fraud detection built with the Python DSL: what SEED_TEXT must import as."""
    llm = LLM("ollama/llama3", prompt="Classify {{data}} as fraud? Context: {{context}}")
    model = MLModel("isolation_forest.pkl", input=llm.output)
    matrix = DecisionMatrix("policy.dmx", input=model.output)
    workflow = WorkflowSpec(
        name="FraudDetection",
        source=NATS("transactions"),
        target=NATS("alerts"),
        context=BayesianNetwork("risk.bn"),
        agents=[llm, model, matrix],
    )
    return Program(workflows=[workflow])


# -- Hypothesis strategies for random valid programs ---------------------------------------------------------------

_RESERVED = {"true", "false", "null"}
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True).filter(
    lambda s: s not in _RESERVED and not keyword.iskeyword(s)
)
type_names = st.from_regex(r"[A-Z][A-Za-z0-9]{0,7}", fullmatch=True)
texts = st.text(max_size=12) | st.sampled_from(
    ['say "hi"', "a\\b", "line one\nline two\n", "tab\there", "ends\"", "é ✓"]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
refs = st.lists(identifiers, min_size=1, max_size=3).map(lambda parts: Ref(path=tuple(parts)))


def _with_calls(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(children, max_size=3)
        | st.dictionaries(texts | identifiers, children, max_size=3)
        | st.builds(
            lambda name, args, kwargs: Call(name=name, args=args, kwargs=kwargs),
            type_names,
            st.lists(children, max_size=2),
            st.dictionaries(identifiers, children, max_size=2),
        )
    )


values = st.recursive(scalars | refs, _with_calls, max_leaves=8)
objects = st.dictionaries(texts | identifiers, values, max_size=3)


@st.composite
def agents(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(sorted(AGENT_KINDS)))
    cls = AGENT_KINDS[kind]
    fields: dict[str, Any] = {}
    if cls.positional:
        fields[cls.positional[0]] = draw(texts)
    if draw(st.booleans()):
        fields["id"] = draw(identifiers | st.sampled_from([cls.default_id(), f"{cls.default_id()}_2"]))
    for name in ("input", "config", "retry", "context"):
        if draw(st.integers(0, 3)) == 0:
            fields[name] = draw(values)
    if draw(st.booleans()):
        fields["when"] = draw(texts)
    if draw(st.integers(0, 3)) == 0:
        fields["timeout"] = draw(texts | st.integers(0, 100))
    if draw(st.integers(0, 3)) == 0:
        fields["output_channel"] = draw(texts)
    if kind == "LLM" and draw(st.booleans()):
        fields["temperature"] = draw(st.floats(0, 2))
        fields["prompt"] = draw(texts)
    known = set(cls.argument_names()) | set(cls.model_fields)
    extra = draw(st.dictionaries(identifiers.filter(lambda k: k not in known), values, max_size=2))
    if extra:
        fields["extra_args"] = extra
    return cls(**fields)


sources = st.one_of(
    st.builds(lambda s: NATS(s), texts),
    st.builds(lambda s, o: NATS(s, o), texts, objects),
    st.builds(lambda s: HttpSource(s), texts),
)
targets = st.one_of(st.builds(lambda s: NatsTarget(s), texts), st.builds(lambda s: HttpTarget(s), texts))
contexts = st.one_of(
    st.builds(lambda p: KnowledgeBase(p), texts),
    st.builds(lambda p, i: BayesianNetworkContext(p, id=i), texts, identifiers),
    st.builds(lambda c, q: Database(c, q), texts, texts),
)
monitors = st.builds(
    lambda m, d, e: Monitor(metrics=m, dashboard=d, extra=e),
    st.lists(texts, max_size=3),
    st.none() | texts,
    st.dictionaries(identifiers.filter(lambda k: k not in Monitor.model_fields), values, max_size=2),
)
deployments = st.builds(
    lambda ns, images, resources, scaling, registry: Deployment(
        namespace=ns, base_images=images, resources=resources, scaling=scaling, registry=registry
    ),
    st.none() | texts,
    st.dictionaries(identifiers, texts, max_size=2),
    st.dictionaries(
        identifiers,
        st.builds(lambda c, m: Resources(cpu=c, memory=m), st.none() | texts, st.none() | texts),
        max_size=2,
    ),
    st.none()
    | st.builds(lambda lo, hi: Scaling(min_replicas=lo, max_replicas=hi), st.integers(0, 9), st.integers(0, 99)),
    st.none() | values,
)
_WORKFLOW_KEYS = {"source", "target", "context", "preprocessors", "agents", "monitor", "deployment", "nats",
                  "models", "data", "schemas", "config"}


@st.composite
def workflows(draw: st.DrawFn) -> WorkflowSpec:
    return WorkflowSpec(
        name=draw(type_names),
        sources=draw(st.lists(sources, max_size=2)),
        targets=draw(st.lists(targets, max_size=2)),
        contexts=draw(st.lists(contexts, max_size=2)),
        preprocessors=draw(st.lists(agents(), max_size=1)),
        agents=draw(st.lists(agents(), max_size=4)),
        monitor=draw(st.none() | monitors),
        deployment=draw(st.none() | deployments),
        nats=draw(st.none() | texts),
        models=draw(objects),
        config=draw(objects),
        extra_blocks=draw(st.dictionaries(identifiers.filter(lambda k: k not in _WORKFLOW_KEYS), values, max_size=2)),
    )


subworkflows = st.builds(
    lambda name, inputs, outputs, ctx, members: SubworkflowSpec(
        name=name, inputs=inputs, outputs=outputs, contexts=ctx, agents=members
    ),
    type_names,
    st.lists(texts, max_size=2),
    st.lists(texts, max_size=2),
    st.lists(contexts, max_size=1),
    st.lists(agents(), max_size=2),
)
integrations = st.builds(
    lambda wf, use, i, o: IntegrationSpec(workflow=wf, use=use, input_mapping=i, output_mapping=o),
    type_names,
    type_names,
    objects,
    objects,
)
programs = st.builds(
    lambda w, s, i: Program(workflows=w, subworkflows=s, integrations=i),
    st.lists(workflows(), max_size=2),
    st.lists(subworkflows, max_size=1),
    st.lists(integrations, max_size=1),
)

__all__ = ["CORPUS_DIR", "SEED_TEXT", "corpus_file", "corpus_files", "programs", "seed_program_in_python"]
