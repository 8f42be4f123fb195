"""Monitoring objects of a workflow: a Grafana dashboard in a ConfigMap and, when enabled, a Prometheus PodMonitor.

Every agent pod already carries the ``prometheus.io/scrape|port|path`` annotations (see ``_kubernetes.py``), which
annotation-based Prometheus setups follow. Clusters running the Prometheus Operator ignore annotations and select
``monitoring.coreos.com/v1`` PodMonitors instead: ``PlatformSettings.pod_monitor`` adds one per workflow.

The dashboard charts the series each worker exposes on ``/metrics`` (``kumeo_iac.runtime._metrics``), labelled
``workflow`` (the workflow's name) and ``agent`` (the agent id): events in/out per second, processing-time
percentiles from the ``kumeo_processing_seconds`` histogram, failures, dead letters and consumer lag. It is plain
data (the Grafana dashboard JSON model, schema 39), so it is deterministic like the rest of the Plan; the ConfigMap
is labelled ``grafana_dashboard: "1"`` for the Grafana sidecar (kube-prometheus-stack's default) to load it.
"""

from __future__ import annotations

import json
from typing import Any

from kumeo_iac.compile._names import dns_name
from kumeo_iac.compile._plan import WorkflowPlan
from kumeo_iac.compile._settings import PlatformSettings

__all__ = ["DASHBOARD_LABEL", "METRICS", "grafana_dashboard", "observability_objects", "pod_monitor"]

#: The label (and value) the Grafana dashboard sidecar watches ConfigMaps for.
DASHBOARD_LABEL = ("grafana_dashboard", "1")
#: The series a worker exposes (the names in ``runtime/_metrics.py``), by what the dashboard calls them.
METRICS = {
    "events_in": "kumeo_events_in_total",
    "events_out": "kumeo_events_out_total",
    "failed": "kumeo_events_failed_total",
    "dead_lettered": "kumeo_events_dead_lettered_total",
    "processing": "kumeo_processing_seconds",
    "lag": "kumeo_consumer_lag",
}
_METRICS_PORT = "http"  # the container port name of every agent (see _kubernetes.agent_objects)
_METRICS_PATH = "/metrics"


def _labels(slug: str, name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "kumeo",
        "app.kubernetes.io/managed-by": "kumeo",
        "kumeo.dev/workflow": slug,
    }


def _promql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _panel(panel_id: int, title: str, unit: str, targets: list[tuple[str, str]], grid: tuple[int, int, int, int],
           *, description: str = "", stack: bool = False) -> dict[str, Any]:
    x, y, w, h = grid
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "min": 0,
                "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                           "stacking": {"mode": "normal" if stack else "none", "group": "A"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
             "datasource": {"type": "prometheus", "uid": "${datasource}"}}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def grafana_dashboard(plan: WorkflowPlan) -> dict[str, Any]:
    """The Grafana dashboard (JSON model) of one workflow: rates, latency percentiles, errors, dead letters, lag."""
    wf = _promql_string(plan.name)
    sel = f'workflow="{wf}", agent=~"$agent"'
    m = METRICS
    bucket = f"{m['processing']}_bucket"
    panels = [
        _panel(1, "Events in per second", "ops",
               [(f"sum by (agent) (rate({m['events_in']}{{{sel}}}[$__rate_interval]))", "{{agent}}")],
               (0, 0, 12, 8), description="Deliveries each agent received (redeliveries included)."),
        _panel(2, "Events out per second", "ops",
               [(f"sum by (agent) (rate({m['events_out']}{{{sel}}}[$__rate_interval]))", "{{agent}}")],
               (12, 0, 12, 8), description="Messages each agent published to its outputs."),
        _panel(3, "Processing time p50 / p95 / p99", "s",
               [(f"histogram_quantile({q}, sum by (agent, le) (rate({bucket}{{{sel}}}[$__rate_interval])))",
                 f"{{{{agent}}}} p{label}") for q, label in (("0.5", "50"), ("0.95", "95"), ("0.99", "99"))],
               (0, 8, 24, 9), description="From fetching an event to acknowledging it (kumeo_processing_seconds)."),
        _panel(4, "Failed attempts per second", "ops",
               [(f"sum by (agent) (rate({m['failed']}{{{sel}}}[$__rate_interval]))", "{{agent}}")],
               (0, 17, 8, 8), description="Processing attempts that failed (retried or dead-lettered)."),
        _panel(5, "Dead letters (in the time range)", "short",
               [(f"sum by (agent) (increase({m['dead_lettered']}{{{sel}}}[$__range]))", "{{agent}}")],
               (8, 17, 8, 8), description=f"Events sent to kumeo.{plan.slug}.dlq.<agent>.", stack=True),
        _panel(6, "Consumer lag", "short",
               [(f"max by (agent) ({m['lag']}{{{sel}}})", "{{agent}}")],
               (16, 17, 8, 8), description="Messages waiting in each agent's consumers (num_pending)."),
    ]
    return {
        "uid": dns_name("kumeo", plan.slug, limit=40),
        "title": f"Kumeo / {plan.name}",
        "description": f"Agents of the Kumeo workflow {plan.name} (namespace {plan.namespace}).",
        "tags": ["kumeo", plan.slug],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1},
            {"name": "agent", "label": "Agent", "type": "query",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": f'label_values({m["events_in"]}{{workflow="{wf}"}}, agent)', "refId": "agents"},
             "definition": f'label_values({m["events_in"]}{{workflow="{wf}"}}, agent)',
             "includeAll": True, "multi": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"},
             "refresh": 2, "sort": 1, "hide": 0},
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboard_config_map(plan: WorkflowPlan, settings: PlatformSettings) -> dict[str, Any]:
    """The ConfigMap holding the workflow's Grafana dashboard, labelled for the Grafana sidecar."""
    name = dns_name(plan.slug, "grafana-dashboard")
    labels = {**_labels(plan.slug, name), DASHBOARD_LABEL[0]: DASHBOARD_LABEL[1],
              **dict(settings.monitoring_labels)}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": plan.namespace, "labels": labels,
                     "annotations": {"grafana_folder": "Kumeo"}},
        "data": {f"{plan.slug}.json": json.dumps(grafana_dashboard(plan), indent=1, sort_keys=True)},
    }


def pod_monitor(plan: WorkflowPlan, settings: PlatformSettings) -> dict[str, Any]:
    """A Prometheus Operator PodMonitor scraping ``/metrics`` on the ``http`` port of every agent pod."""
    name = dns_name(plan.slug, "agents")
    labels = {**_labels(plan.slug, name), **dict(settings.monitoring_labels)}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": name, "namespace": plan.namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"kumeo.dev/workflow": plan.slug,
                                         "app.kubernetes.io/component": "agent"}},
            "namespaceSelector": {"matchNames": [plan.namespace]},
            "podMetricsEndpoints": [{"port": _METRICS_PORT, "path": _METRICS_PATH, "interval": "15s",
                                     "honorLabels": True}],
        },
    }


def observability_objects(plan: WorkflowPlan, settings: PlatformSettings) -> list[dict[str, Any]]:
    """The monitoring objects of a workflow: its dashboard ConfigMap, and a PodMonitor when settings ask for one."""
    objects = [dashboard_config_map(plan, settings)]
    if settings.pod_monitor:
        objects.append(pod_monitor(plan, settings))
    return objects
