"""``kumeo dashboard --metrics-discover``: the workflow's headless metrics Service is resolved to every agent pod,
each pod's ``/metrics`` is scraped, and an agent's replicas are summed. Real HTTP servers on two loopback
addresses stand for the pods; the resolver is the only thing replaced (no cluster DNS here)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kumeo_iac.compile import Plan, compile_program
from kumeo_iac.dashboard._live import Live, metrics_service, resolve_addresses
from kumeo_iac.runtime._metrics import CONTENT_TYPE, WorkerMetrics

DEMO = Path(__file__).resolve().parents[1] / "e2e" / "ui_demo" / "orders.kumeo"
SLUG = "order-review"


def _plan() -> Plan:
    from kumeo_iac.validate import load

    return compile_program(load(DEMO), base_dir=DEMO.parent)


def _service(plan: Plan) -> dict:
    [wf] = plan.workflows
    [svc] = [o for o in wf.kubernetes if o["kind"] == "Service" and o["metadata"]["name"] == f"{SLUG}-metrics"]
    return svc


def _worker(agent: str, *, events_in: int, failed: int, seconds: list[float], lag: int = 0) -> WorkerMetrics:
    metrics = WorkerMetrics("OrderReview", agent)
    metrics.events_in, metrics.events_out, metrics.events_failed = events_in, events_in - failed, failed
    metrics.consumer_lag = lag
    for s in seconds:
        metrics.observe_processing(s)
    return metrics


@contextlib.contextmanager
def _pod(address: str, port: int, pages: dict[str, list[WorkerMetrics]]) -> Iterator[int]:
    """An HTTP server on ``address:port`` answering each path of ``pages`` with those workers' metrics text."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            workers = pages.get(self.path)
            if workers is None:
                self.send_error(404)
                return
            body = "".join(w.render() for w in workers).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    try:
        server = ThreadingHTTPServer((address, port), Handler)
    except OSError as exc:  # e.g. macOS, where only 127.0.0.1 is configured on lo0
        pytest.skip(f"cannot listen on {address}: {exc}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_service_comes_from_the_plan() -> None:
    plan = _plan()
    [wf] = plan.workflows
    namespace = _service(plan)["metadata"]["namespace"]
    assert _service(plan)["spec"]["clusterIP"] == "None"
    assert metrics_service(wf) == (f"{SLUG}-metrics.{namespace}.svc", 8080)


async def test_every_pod_is_scraped_and_replicas_are_summed() -> None:
    # score runs two replicas (one on each "pod" address), validate one; review and decide answer nowhere
    score_a = _worker("score", events_in=10, failed=1, seconds=[0.002] * 9 + [0.3], lag=4)
    score_b = _worker("score", events_in=5, failed=0, seconds=[0.004] * 5, lag=3)
    validate = _worker("validate", events_in=7, failed=2, seconds=[0.001] * 7)
    explicit_decide = _worker("decide", events_in=99, failed=0, seconds=[0.02])
    stale_decide = _worker("decide", events_in=1, failed=1, seconds=[5.0])
    other_workflow = WorkerMetrics("Elsewhere", "score")
    other_workflow.events_in = 1000

    with _pod("127.0.0.1", 0, {"/metrics": [score_a, other_workflow], "/decide": [explicit_decide]}) as port, \
            _pod("127.0.0.2", port, {"/metrics": [score_b, validate, stale_decide]}):
        plan = _plan()
        _service(plan)["spec"]["ports"][0]["port"] = port  # the scrape port is the Service's, not a constant
        asked: list[tuple[str, int]] = []

        async def resolve(host: str, p: int) -> list[str]:
            asked.append((host, p))
            return ["127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.3"]  # .3: a pod that does not answer

        live = Live("nats://unused", discover_metrics=True, resolve=resolve,
                    metrics_urls={"decide": f"http://127.0.0.1:{port}/decide"})
        samples = await live._samples(plan)

    [(host, asked_port)] = asked
    assert host.startswith(f"{SLUG}-metrics.") and host.endswith(".svc") and asked_port == port
    assert set(samples) == {(SLUG, "score"), (SLUG, "validate"), (SLUG, "decide")}

    score = samples[(SLUG, "score")]
    assert score.counters["events_in"] == 15 and score.counters["failed"] == 1  # both replicas, not other workflows
    assert score.counters["events_out"] == 14
    assert score.count == 15 and score.sum == pytest.approx(9 * 0.002 + 0.3 + 5 * 0.004)
    assert score.buckets[float("inf")] == 15
    assert score.lag == 4  # every replica reports the same consumers: the largest, not the sum

    assert samples[(SLUG, "validate")].counters["events_in"] == 7
    assert samples[(SLUG, "validate")].counters["failed"] == 2
    # an explicit --metrics URL wins for its agent over what the pods say
    assert samples[(SLUG, "decide")].counters["events_in"] == 99
    assert samples[(SLUG, "decide")].count == 1


async def test_a_resolver_failure_leaves_nats_numbers_only(caplog: pytest.LogCaptureFixture) -> None:
    async def unresolvable(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with caplog.at_level("DEBUG", logger="kumeo.dashboard"):
        assert await Live("nats://unused", discover_metrics=True, resolve=unresolvable)._samples(_plan()) == {}
    assert any("resolving order-review-metrics." in r.getMessage() for r in caplog.records)

    async def no_pods(host: str, port: int) -> list[str]:
        return []

    assert await Live("nats://unused", discover_metrics=True, resolve=no_pods)._samples(_plan()) == {}

    async def called(host: str, port: int) -> list[str]:
        raise AssertionError("discovery is off")

    assert await Live("nats://unused", resolve=called)._samples(_plan()) == {}


async def test_the_default_resolver_uses_getaddrinfo() -> None:
    assert await resolve_addresses("127.0.0.1", 8080) == ["127.0.0.1"]
    with pytest.raises(socket.gaierror):
        await resolve_addresses("no-such-service.invalid", 8080)
