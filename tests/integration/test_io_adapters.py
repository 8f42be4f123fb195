"""Source and target adapters on a real nats-server: HTTP ingest, Timer, File in and out, HTTP out with retries."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from kumeo_iac.compile import compile_program
from kumeo_iac.jetstream import (
    consumer_config_from_inputs,
    ensure_consumer,
    ensure_stream,
    stream_config_from_inputs,
)
from kumeo_iac.runtime import envelope
from kumeo_iac.runtime.io import (
    FileSource,
    FileTarget,
    Gateway,
    HttpSource,
    HttpTarget,
    TimerSource,
    parse_body,
    refusals,
    target_consumers,
)
from kumeo_iac.runtime.io._http_source import BadRequest
from kumeo_iac.validate import load

pytestmark = [pytest.mark.nats, pytest.mark.timeout(60)]


def workflow_of(tmp_path: Path, text: str, name: str = "wf.kumeo") -> Any:
    path = tmp_path / name
    path.write_text(text)
    return compile_program(load(path, strict_files=True), base_dir=tmp_path).workflows[0]


def endpoint(wf: Any, kind: str, role: str = "sources") -> Any:
    return next(e for e in getattr(wf, role) if e.kind == kind)


async def open_js(url: str, wf: Any) -> tuple[Any, Any]:
    """What the deployer does first: the streams, and the target consumers the adapters bind to."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    for stream in wf.streams:
        await ensure_stream(js, stream_config_from_inputs(dict(stream.config)))
    for consumer in target_consumers(wf):
        await ensure_consumer(js, consumer.stream, consumer_config_from_inputs(dict(consumer.config)))
    return nc, js


async def messages(js: Any, stream: str, subject: str, expected: int, timeout: float = 10.0) -> list[Any]:
    """Wait until ``subject`` holds ``expected`` messages and return them all (ordered, ephemeral consumer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        info = await js.stream_info(stream, subjects_filter=subject)
        count = int((info.state.subjects or {}).get(subject, 0))
        if count >= expected or loop.time() > deadline:
            break
        await asyncio.sleep(0.05)
    if count == 0:
        return []
    sub = await js.pull_subscribe(subject, stream=stream)
    try:
        out: list[Any] = []
        while len(out) < count:
            out += await sub.fetch(count - len(out), timeout=2.0)
        return out
    finally:
        await sub.unsubscribe()


SOURCES = """
workflow Ingest {
  source: [HTTP("/ingest"), Timer("1s", id: "tick"), File("in.jsonl", id: "lines")]
  target: [File("out/results.jsonl", id: "file"), HTTP("http://127.0.0.1:9/hook", id: "hook")]
  agents: [ DataProcessor(id: "pass", input: source, config: { required_fields: ["id"] }) ]
}
"""


# -- HTTP source ---------------------------------------------------------------------------------------------------


def test_parse_body_accepts_object_array_and_json_lines() -> None:
    assert parse_body(b'{"a": 1}') == [{"a": 1}]
    assert parse_body(b'[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]
    assert parse_body(b'{"a": 1}\n\n{"a": 2}\n') == [{"a": 1}, {"a": 2}]
    assert parse_body(b'{"a": 1}', "application/x-ndjson") == [{"a": 1}]
    for body, message in [(b"", "the body is empty"), (b"{nope", "invalid JSON: Expecting property name"),
                          (b"42", "expected a JSON object"), (b"[1]", "element 0 of the array"),
                          (b'{"a": 1}\n{bad', "line 2: invalid JSON"), (b"[]", "the array is empty"),
                          (b"\xff", "not UTF-8")]:
        with pytest.raises(BadRequest, match=message):
            parse_body(body)


async def test_http_source_publishes_each_posted_event_with_its_envelope(nats_url: str, tmp_path: Path) -> None:
    wf = workflow_of(tmp_path, SOURCES)
    (tmp_path / "in.jsonl").write_text("")
    ep = endpoint(wf, "HTTP")
    nc, js = await open_js(nats_url, wf)
    source = HttpSource(wf, ep, host="127.0.0.1", port=0)
    await source.start(nc)
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            one = await client.post(source.url, json={"id": 1})
            assert one.status_code == 202
            assert one.json()["subject"] == "kumeo.ingest.source.0"
            many = await client.post(source.url, json=[{"id": 2}, {"id": 3}])
            lines = await client.post(source.url, content=b'{"id": 4}\n{"id": 5}\n',
                                      headers={"Content-Type": "application/x-ndjson"})
            keyed = [await client.post(source.url, json={"id": 6}, headers={"Idempotency-Key": "order-6"})
                     for _ in range(2)]
            bad = await client.post(source.url, content=b'{"id": 7,}')
            wrong_path = await client.post(source.url.replace("/ingest", "/nope"), json={"id": 8})
            wrong_method = await client.get(source.url)
            health = await client.get(source.url.replace("/ingest", "/healthz"))
        assert [len(r.json()["event_ids"]) for r in (many, lines)] == [2, 2]
        assert [r.json()["event_ids"] for r in keyed] == [["order-6"], ["order-6"]]
        assert bad.status_code == 400
        assert bad.json()["error"].startswith("invalid JSON: Expecting property name enclosed in double quotes")
        assert (wrong_path.status_code, wrong_method.status_code, health.status_code) == (404, 405, 200)
        assert wrong_method.headers["allow"] == "POST"

        stored = await messages(js, ep.stream, ep.subject, 6)
        assert [json.loads(m.data)["id"] for m in stored] == [1, 2, 3, 4, 5, 6]  # the retried key is deduped
        ids = one.json()["event_ids"] + many.json()["event_ids"] + lines.json()["event_ids"] + ["order-6"]
        assert [m.headers[envelope.EVENT_ID] for m in stored] == ids
        for m in stored:
            assert m.headers[envelope.MSG_ID] == m.headers[envelope.EVENT_ID]
            assert envelope.parse_traceparent(m.headers[envelope.TRACEPARENT]) is not None
        assert source.accepted == 7  # the duplicate was accepted, and stored once
    finally:
        await source.stop()
        await nc.close()


async def test_http_source_reports_a_busy_port(nats_url: str, tmp_path: Path) -> None:
    wf = workflow_of(tmp_path, SOURCES)
    nc, _ = await open_js(nats_url, wf)
    first = HttpSource(wf, endpoint(wf, "HTTP"), host="127.0.0.1", port=0)
    await first.start(nc)
    second = HttpSource(wf, endpoint(wf, "HTTP"), host="127.0.0.1", port=first.port)
    try:
        with pytest.raises(Exception, match=r"workflow 'Ingest': HTTP source '/ingest' cannot listen on "
                                             r"127\.0\.0\.1:\d+"):
            await second.start(nc)
    finally:
        await first.stop()
        await nc.close()


# -- Timer source --------------------------------------------------------------------------------------------------


async def test_timer_fires_n_times(nats_url: str, tmp_path: Path) -> None:
    wf = workflow_of(tmp_path, SOURCES)
    ep = endpoint(wf, "Timer")
    assert TimerSource(wf, ep).interval == 1.0
    nc, js = await open_js(nats_url, wf)
    timer = TimerSource(wf, ep, interval=0.05, limit=4)
    await timer.start(nc)
    try:
        stored = await messages(js, ep.stream, ep.subject, 4)
        await asyncio.sleep(0.2)
        assert timer.fired == 4
        bodies = [json.loads(m.data) for m in stored]
        assert [b["tick"] for b in bodies] == [1, 2, 3, 4]
        assert all(b["time"].endswith("Z") for b in bodies)
        assert len({m.headers[envelope.EVENT_ID] for m in stored}) == 4
        assert len(await messages(js, ep.stream, ep.subject, 5, timeout=0.2)) == 4  # and then it stops
    finally:
        await timer.stop()
        await nc.close()


async def test_timer_sends_its_payload(nats_url: str, tmp_path: Path) -> None:
    wf = workflow_of(tmp_path, """
workflow Beat {
  source: Timer("100ms", payload: { kind: "beat" })
  target: NATS("beats.out")
  agents: [ DataProcessor(id: "pass", input: source) ]
}
""")
    ep = wf.sources[0]
    nc, js = await open_js(nats_url, wf)
    timer = TimerSource(wf, ep, limit=2)
    assert timer.interval == pytest.approx(0.1)
    await timer.start(nc)
    try:
        stored = await messages(js, ep.stream, ep.subject, 2)
        assert [json.loads(m.data) for m in stored] == [{"kind": "beat"}, {"kind": "beat"}]
    finally:
        await timer.stop()
        await nc.close()


# -- File source and target ----------------------------------------------------------------------------------------


async def test_file_source_publishes_lines_and_dead_letters_bad_ones(nats_url: str, tmp_path: Path) -> None:
    wf = workflow_of(tmp_path, SOURCES)
    (tmp_path / "in.jsonl").write_text('{"id": 1}\n\n{"id": 2,\n[1, 2]\n{"id": 3}')  # no final newline
    ep = endpoint(wf, "File")
    nc, js = await open_js(nats_url, wf)
    source = FileSource(wf, ep, base_dir=tmp_path)
    await source.start(nc)
    try:
        await asyncio.wait_for(source.wait_finished(), 10)
        assert (source.published, source.dead_lettered) == (2, 2)
        stored = await messages(js, ep.stream, ep.subject, 2)
        assert [json.loads(m.data) for m in stored] == [{"id": 1}, {"id": 3}]
        dead = await messages(js, ep.stream, "kumeo.ingest.dlq.source", 2)
        bodies = [json.loads(m.data) for m in dead]
        assert [(b["line"], b["input"]) for b in bodies] == [(3, '{"id": 2,'), (4, "[1, 2]")]
        assert bodies[0]["error"].startswith("in.jsonl:3: invalid JSON: Expecting property name")
        assert bodies[1]["error"] == "in.jsonl:4: expected a JSON object, got an array"
        assert dead[1].headers[envelope.ERROR] == bodies[1]["error"]
        assert bodies[0]["source"] == "in.jsonl"
    finally:
        await source.stop()
        await nc.close()


async def test_file_source_follow_reads_appended_lines(nats_url: str, tmp_path: Path) -> None:
    wf = workflow_of(tmp_path, SOURCES)
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1}\n')
    ep = endpoint(wf, "File")
    nc, js = await open_js(nats_url, wf)
    source = FileSource(wf, ep, base_dir=tmp_path, follow=True, poll_seconds=0.05)
    await source.start(nc)
    try:
        await asyncio.wait_for(source.wait_finished(), 10)
        with open(path, "a") as f:
            f.write('{"id": 2}\n{"id":')
        await asyncio.sleep(0.3)
        with open(path, "a") as f:
            f.write(' 3}\n')
        stored = await messages(js, ep.stream, ep.subject, 3)
        assert [json.loads(m.data)["id"] for m in stored] == [1, 2, 3]
    finally:
        await source.stop()
        await nc.close()


async def test_file_source_missing_file_is_an_error(nats_url: str, tmp_path: Path) -> None:
    wf = workflow_of(tmp_path, SOURCES)
    nc, _ = await open_js(nats_url, wf)
    try:
        with pytest.raises(Exception, match=r"workflow 'Ingest': File source 'in.jsonl': no such file"):
            await FileSource(wf, endpoint(wf, "File"), base_dir=tmp_path / "elsewhere").start(nc)
    finally:
        await nc.close()


async def publish_results(js: Any, subject: str, payloads: list[Any]) -> list[str]:
    ids = []
    for payload in payloads:
        event_id = envelope.new_event_id()
        headers = envelope.build_headers(event_id=event_id, agent="pass", attempt=1,
                                         traceparent=envelope.next_traceparent(None, event_id))
        await js.publish(subject, json.dumps(payload).encode(), headers=headers)
        ids.append(event_id)
    return ids


async def wait_idle(js: Any, stream: str, durable: str, timeout: float = 10.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        info = await js.consumer_info(stream, durable)
        if (info.num_pending == 0 and info.num_ack_pending == 0) or loop.time() > deadline:
            return info
        await asyncio.sleep(0.05)


async def test_file_target_appends_one_json_line_per_result(nats_url: str, tmp_path: Path) -> None:
    wf = workflow_of(tmp_path, SOURCES)
    ep = endpoint(wf, "File", "targets")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.jsonl").write_text('{"kept": true}\n')
    nc, js = await open_js(nats_url, wf)
    await publish_results(js, ep.subject, [{"n": 1}, {"n": 2, "text": "é"}])
    target = FileTarget(wf, ep, base_dir=tmp_path)
    await target.start(nc)
    try:
        await publish_results(js, ep.subject, [{"n": 3}])
        info = await wait_idle(js, ep.stream, "gateway-target-file")
        assert (info.num_pending, info.num_ack_pending) == (0, 0)
        lines = (tmp_path / "out" / "results.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == [{"kept": True}, {"n": 1}, {"n": 2, "text": "é"}, {"n": 3}]
        assert target.delivered == 3
    finally:
        await target.stop()
        await nc.close()


# -- HTTP target ---------------------------------------------------------------------------------------------------


class Receiver:
    """A loopback HTTP server answering from a script of status codes (the last one repeats)."""

    def __init__(self, statuses: list[int], delay: float = 0.0) -> None:
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                index = min(len(receiver.requests), len(receiver.statuses)) - 1
                if delay:
                    threading.Event().wait(delay)
                self.send_response(receiver.statuses[index])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def hook_workflow(tmp_path: Path, url: str, options: str = "") -> Any:
    return workflow_of(tmp_path, f"""
workflow Hooked {{
  source: NATS("hooked.in")
  target: HTTP("{url}"{options})
  agents: [ DataProcessor(id: "pass", input: source) ]
}}
""")


async def test_http_target_retries_until_the_receiver_accepts(nats_url: str, tmp_path: Path) -> None:
    with Receiver([503, 502, 200]) as receiver:
        wf = hook_workflow(tmp_path, receiver.url)
        ep = wf.targets[0]
        nc, js = await open_js(nats_url, wf)
        target = HttpTarget(wf, ep, backoff=0.05)
        assert target.retries == 3
        await target.start(nc)
        try:
            [event_id] = await publish_results(js, ep.subject, [{"n": 1}])
            info = await wait_idle(js, ep.stream, "gateway-target-0")
            assert (info.num_pending, info.num_ack_pending) == (0, 0)
            assert len(receiver.requests) == 3
            headers, body = receiver.requests[-1]
            assert body == {"n": 1}
            assert headers["kumeo-event-id"] == event_id == headers["idempotency-key"]
            assert headers["content-type"] == "application/json"
            assert (target.delivered, target.dead_lettered) == (1, 0)
            assert await messages(js, ep.stream, "kumeo.hooked.dlq.target.0", 1, timeout=0.3) == []
        finally:
            await target.stop()
            await nc.close()


async def test_http_target_dead_letters_with_the_status_after_the_last_retry(nats_url: str,
                                                                            tmp_path: Path) -> None:
    with Receiver([500]) as receiver:
        wf = hook_workflow(tmp_path, receiver.url, ', { retry: { attempts: 2, backoff: "50ms" } }')
        ep = wf.targets[0]
        nc, js = await open_js(nats_url, wf)
        target = HttpTarget(wf, ep)
        assert (target.retries, target.backoff) == (2, 0.05)
        await target.start(nc)
        try:
            [event_id] = await publish_results(js, ep.subject, [{"n": 1}])
            [dead] = await messages(js, ep.stream, "kumeo.hooked.dlq.target.0", 1)
            body = json.loads(dead.data)
            assert body == {"error": f"POST {receiver.url} failed after 3 attempt(s): HTTP 500 Internal Server "
                                     "Error", "target": receiver.url, "status": 500, "attempts": 3,
                            "input": {"n": 1}}
            assert dead.headers[envelope.EVENT_ID] == event_id
            assert dead.headers[envelope.ERROR] == body["error"]
            assert len(receiver.requests) == 3
            info = await wait_idle(js, ep.stream, "gateway-target-0")
            assert (info.num_pending, info.num_ack_pending) == (0, 0)
        finally:
            await target.stop()
            await nc.close()


async def test_http_target_does_not_retry_a_client_error(nats_url: str, tmp_path: Path) -> None:
    with Receiver([422]) as receiver:
        wf = hook_workflow(tmp_path, receiver.url)
        ep = wf.targets[0]
        nc, js = await open_js(nats_url, wf)
        target = HttpTarget(wf, ep, backoff=0.05)
        await target.start(nc)
        try:
            await publish_results(js, ep.subject, [{"n": 1}])
            [dead] = await messages(js, ep.stream, "kumeo.hooked.dlq.target.0", 1)
            assert json.loads(dead.data)["status"] == 422
            assert json.loads(dead.data)["attempts"] == 1
            assert len(receiver.requests) == 1
        finally:
            await target.stop()
            await nc.close()


# -- refusals ------------------------------------------------------------------------------------------------------


def test_kafka_and_mqtt_are_refused_with_the_workflow_and_the_line(tmp_path: Path) -> None:
    wf = workflow_of(tmp_path, """workflow Streams {
  source: [NATS("ok.in"),
    Kafka("payments")]
  target: MQTT("alerts/out")
  agents: [ DataProcessor(id: "pass", input: source) ]
}
""", name="fraud.kumeo")
    found = [r.format("fraud.kumeo") for r in refusals(wf)]
    assert found[0].startswith("fraud.kumeo:3: error: workflow 'Streams': Kafka sources are not supported by the "
                               "local runtime yet")
    assert found[1].startswith("fraud.kumeo:4: error: workflow 'Streams': MQTT targets are not supported by the "
                               "local runtime yet")
    with pytest.raises(Exception, match="Kafka sources are not supported"):
        Gateway(wf)
