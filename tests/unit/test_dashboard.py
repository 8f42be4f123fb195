"""The dashboard's pure parts (diagnostics, the visual editor's edits, metrics parsing), its stream reader on a real
nats-server, and the monitoring objects compile adds to the Plan."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kumeo_iac.compile import PlatformSettings, compile_program
from kumeo_iac.dashboard._scrape import parse_metrics, quantile
from kumeo_iac.dashboard._workspace import (
    EditError,
    apply_edits,
    check_text,
    editor_model,
    kinds_catalog,
    parse_value,
)
from kumeo_iac.lang import parse
from kumeo_iac.runtime._metrics import WorkerMetrics

DEMO = Path(__file__).resolve().parents[1] / "e2e" / "ui_demo" / "orders.kumeo"
TEXT = DEMO.read_text()


# -- editor -------------------------------------------------------------------------------------------------------


def test_diagnostics_are_those_of_kumeo_check_with_positions() -> None:
    from kumeo_iac.validate import check_file

    assert check_text(TEXT, "orders.kumeo", DEMO.parent) == []
    broken = TEXT.replace('input: validate.output', 'input: validaet.output')
    [d] = check_text(broken, "orders.kumeo", DEMO.parent)
    assert d.is_error and "validaet" in d.message and "validate" in (d.message + (d.hint or ""))
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "validaet" in text)
    assert d.span.line == line and d.span.column > 1
    # a syntax error is a diagnostic too, never an exception
    [syntax] = check_text("workflow X { agents: [ ", "x.kumeo", None)
    assert syntax.is_error and syntax.span.line == 1
    assert check_file(DEMO) == []


def test_the_model_is_the_graph_of_the_text() -> None:
    model = editor_model(TEXT, "orders.kumeo", DEMO.parent)
    [flow] = model["flows"]
    assert [a["id"] for a in flow["agents"]] == ["validate", "score", "review", "decide"]
    assert {"from": "validate", "to": "score", "kind": "data"} in flow["edges"]
    assert flow["agents"][0]["arguments"]["config"].startswith("{")
    assert {k["kind"] for k in kinds_catalog()} >= {"DataProcessor", "HumanReview", "Router", "LLM"}


def test_canvas_edits_go_through_the_spec_and_keep_comments() -> None:
    text = apply_edits(TEXT, "orders.kumeo", [
        {"op": "add_agent", "kind": "DataProcessor", "id": "audit", "input": "decide"},
        {"op": "set_argument", "agent": "audit", "name": "config", "value": '{ required_fields: ["order_id"] }'},
    ])
    assert text.startswith("// The workflow the UI tests drive")
    program = parse(text).program
    audit = program.workflows[0].agent("audit")
    assert audit.kind_name == "DataProcessor" and str(audit.input) == "decide.output"
    assert audit.config == {"required_fields": ["order_id"]}
    assert check_text(text, "orders.kumeo", DEMO.parent) == []

    text = apply_edits(text, "orders.kumeo", [{"op": "connect", "from": "score", "to": "audit"},
                                              {"op": "rename", "agent": "audit", "id": "trail"}])
    assert str(parse(text).program.workflows[0].agent("trail").input) == "score.output"
    text = apply_edits(text, "orders.kumeo", [{"op": "remove_agent", "agent": "trail"}])
    assert parse(text).program == parse(TEXT).program

    with pytest.raises(EditError, match="no argument 'colour'"):
        apply_edits(TEXT, "x.kumeo", [{"op": "set_argument", "agent": "score", "name": "colour", "value": "1"}])
    with pytest.raises(EditError, match="unknown agent kind"):
        apply_edits(TEXT, "x.kumeo", [{"op": "add_agent", "kind": "Robot"}])
    with pytest.raises(EditError, match=r"not a .kumeo value"):
        parse_value("{ unclosed: ")
    with pytest.raises(EditError, match="fix the syntax error first"):
        apply_edits("workflow {", "x.kumeo", [])


# -- metrics ------------------------------------------------------------------------------------------------------


def test_worker_metrics_are_read_back_with_percentiles() -> None:
    metrics = WorkerMetrics("OrderReview", "score")
    metrics.events_in, metrics.events_out, metrics.events_failed = 10, 9, 1
    for seconds in [0.002] * 50 + [0.02] * 45 + [0.4] * 5:
        metrics.observe_processing(seconds)
    [(agent, sample)] = parse_metrics(metrics.render(), "OrderReview").items()
    assert agent == "score" and sample.counters["events_in"] == 10 and sample.counters["failed"] == 1
    assert sample.count == 100
    assert 0.001 < quantile(0.5, sample.buckets) <= 0.0025
    assert 0.01 < quantile(0.9, sample.buckets) <= 0.025
    assert 0.25 < quantile(0.99, sample.buckets) <= 0.5
    assert parse_metrics(metrics.render(), "Other") == {}
    assert quantile(0.5, {}) is None


# -- streams ------------------------------------------------------------------------------------------------------


@pytest.mark.nats
async def test_recent_messages_are_the_newest_n_on_a_subject(nats_url: str) -> None:
    import nats
    from nats.js.api import StreamConfig

    from kumeo_iac.dashboard._streams import recent_messages, subject_counts

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        await js.add_stream(StreamConfig(name="S", subjects=["s.>"]))
        for i in range(200):
            await js.publish("s.a" if i % 3 == 0 else "s.b", json.dumps({"i": i}).encode())
        newest = await recent_messages(js, "S", "s.a", 5)
        assert [json.loads(m.data)["i"] for m in newest] == [183, 186, 189, 192, 195, 198][-5:]
        everything = await recent_messages(js, "S", "s.a", 500)
        assert len(everything) == 67
        assert await recent_messages(js, "S", "s.none", 5) == []
        assert await recent_messages(js, "MISSING", "s.a", 5) == []
        assert await subject_counts(js, "S") == {"s.a": 67, "s.b": 133}
        assert (await js.streams_info())[0].config.name == "S"
        assert not list(await js.consumers_info("S"))  # probes leave nothing behind
    finally:
        await nc.close()


# -- observability in the Plan --------------------------------------------------------------------------------


def _plan(settings: PlatformSettings | None = None):
    from kumeo_iac.validate import load

    return compile_program(load(DEMO), base_dir=DEMO.parent, settings=settings).workflows[0]


def test_agents_are_scraped_and_each_workflow_has_a_grafana_dashboard() -> None:
    wf = _plan()
    pods = [o["spec"]["template"]["metadata"]["annotations"] for o in wf.kubernetes if o["kind"] == "Deployment"]
    assert len(pods) == 4
    assert all(a == {"prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/metrics"}
               for a in pods)
    assert not [o for o in wf.kubernetes if o["kind"] == "PodMonitor"]
    [cm] = [o for o in wf.kubernetes if o["kind"] == "ConfigMap" and "grafana_dashboard" in o["metadata"]["labels"]]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["name"] == "order-review-grafana-dashboard"
    dashboard = json.loads(cm["data"]["order-review.json"])
    assert dashboard["title"] == "Kumeo / OrderReview" and len(dashboard["uid"]) <= 40
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    titles = [p["title"] for p in dashboard["panels"]]
    assert titles == ["Events in per second", "Events out per second", "Processing time p50 / p95 / p99",
                      "Failed attempts per second", "Dead letters (in the time range)", "Consumer lag"]
    assert "histogram_quantile(0.95" in exprs and 'workflow="OrderReview"' in exprs
    # every series the dashboard charts is one a worker exposes
    exposed = set(re.findall(r"^# TYPE (\S+)", WorkerMetrics("w", "a").render(), re.MULTILINE))
    charted = {re.sub(r"_(bucket)$", "", m) for m in re.findall(r"\b(kumeo_[a-z_]+)\{", exprs)}
    assert charted <= exposed, charted - exposed
    assert charted == exposed


def test_a_pod_monitor_when_the_platform_runs_the_prometheus_operator() -> None:
    wf = _plan(PlatformSettings(pod_monitor=True, monitoring_labels={"release": "prometheus"}))
    [monitor] = [o for o in wf.kubernetes if o["kind"] == "PodMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"] == {"kumeo.dev/workflow": "order-review",
                                                          "app.kubernetes.io/component": "agent"}
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http"
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"
    pod_labels = [o["spec"]["template"]["metadata"]["labels"] for o in wf.kubernetes if o["kind"] == "Deployment"]
    assert all(monitor["spec"]["selector"]["matchLabels"].items() <= labels.items() for labels in pod_labels)
    assert wf.kubernetes[-1] is monitor  # applied last (a custom resource)
