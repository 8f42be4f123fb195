"""Hostile input at the gateway's HTTP and File sources: refused as a worker refuses it, the rest flows.

A real nats-server; the workflow is compiled from `.kumeo` text with `deployment: { max_input_bytes: 4096 }`, so the
limit reaches the sources through the Plan. Outcomes are counted on the streams: every good event exactly once on
the source subject (by ``Kumeo-Event-Id``), every bad File line once on ``kumeo.<slug>.dlq.source`` with its
reason and line number, every bad HTTP body answered 400/413 with its reason and nothing of it stored.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_support import connect, count, event_ids, messages, wait_for

from kumeo_iac.compile import compile_program
from kumeo_iac.jetstream import ensure_stream, stream_config_from_inputs
from kumeo_iac.runtime.io import FileSource, HttpSource
from kumeo_iac.validate import load

pytestmark = [pytest.mark.nats, pytest.mark.timeout(120)]

LIMIT = 4096
DEEP = "[" * 10_000 + "]" * 10_000
DEEP_UNDER_LIMIT = "[" * 2_000 + "]" * 2_000  # deeper than the decoder goes, shorter than the limit
WORKFLOW = f"""
workflow Hostile {{
  source: [HTTP("/ingest", id: "web"), File("in.jsonl", id: "lines")]
  target: NATS("hostile.out")
  agents: [ DataProcessor(id: "pass", input: source) ]
  deployment: {{ max_input_bytes: {LIMIT} }}
}}
"""


def _compiled(tmp_path: Path) -> Any:
    path = tmp_path / "hostile.kumeo"
    path.write_text(WORKFLOW)
    (tmp_path / "in.jsonl").write_text("")
    return compile_program(load(path, strict_files=True), base_dir=tmp_path).workflows[0]


@pytest.fixture
async def setup(nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KUMEO_MAX_INPUT_BYTES", raising=False)  # the Plan's limit, not the environment's
    wf = _compiled(tmp_path)
    nc = await connect(nats_url)
    js = nc.jetstream()
    for stream in wf.streams:
        await ensure_stream(js, stream_config_from_inputs(dict(stream.config)))
    yield wf, nc, js
    await nc.close()


def _source(wf: Any, kind: str) -> Any:
    return next(e for e in wf.sources if e.kind == kind)


def test_the_compiled_plan_carries_the_workflows_input_limit(tmp_path: Path) -> None:
    wf = _compiled(tmp_path)
    assert _source(wf, "HTTP").options["max_input_bytes"] == LIMIT
    assert _source(wf, "File").options["max_input_bytes"] == LIMIT
    assert all(a.settings["max_input_bytes"] == LIMIT for a in wf.agents)


async def test_hostile_http_bodies_are_answered_with_their_reason_and_nothing_of_them_is_stored(setup) -> None:
    wf, nc, js = setup
    ep = _source(wf, "HTTP")
    source = HttpSource(wf, ep, host="127.0.0.1", port=0)
    assert source.max_input_bytes == LIMIT
    await source.start(nc)
    big = {"id": "big", "blob": "x" * LIMIT}
    hostile: list[tuple[str, bytes, str, int, str]] = [
        ("deep", DEEP.encode(), "application/json", 400, "JSON nested too deeply to decode"),
        ("nan", b'{"amount": NaN}', "application/json", 400, "non-finite number NaN at $.amount is not JSON"),
        ("inf", b'[{"ok": 1}, {"amount": -Infinity}]', "application/json", 400,
         "non-finite number -Infinity at $[1].amount is not JSON"),
        ("overflow", b'{"v": 1e999}', "application/json", 400,
         "number 1e999 at $.v overflows a double (not a finite number)"),
        ("big", json.dumps(big).encode(), "application/json", 413,
         f"event of {len(json.dumps(big, separators=(',', ':')))} bytes is over the limit of {LIMIT} bytes"),
        ("big-in-array", json.dumps([{"id": "small"}, big]).encode(), "application/json", 413,
         "element 1 of the array: event of"),
        ("lines", b'{"id": "l1"}\n{"amount": NaN}\n', "application/x-ndjson", 400,
         "line 2: non-finite number NaN at $.amount is not JSON"),
        ("long-line", b'{"id": "l1"}\n' + json.dumps(big).encode() + b"\n", "application/x-ndjson", 413,
         "line 2: event of"),
        ("latin1", b'{"name": "caf\xe9"}', "application/json", 400, "the body is not UTF-8"),
    ]
    good = [f"good-{i}" for i in range(12)]
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            answers: dict[str, httpx.Response] = {}
            for i, event_id in enumerate(good):
                if i < len(hostile):  # a hostile body between every two good ones
                    name, body, content_type, _, _ = hostile[i]
                    answers[name] = await client.post(source.url, content=body,
                                                      headers={"Content-Type": content_type})
                ok = await client.post(source.url, json={"id": event_id, "amount": 1.5},
                                       headers={"Idempotency-Key": event_id})
                assert ok.status_code == 202, ok.text
                retried = await client.post(source.url, json={"id": event_id, "amount": 1.5},
                                            headers={"Idempotency-Key": event_id})  # a client retry
                assert retried.status_code == 202
            # The gateway is still up and still answers after all of that.
            assert (await client.get(source.url.rsplit("/", 1)[0] + "/healthz")).status_code == 200
    finally:
        await source.stop()

    for name, _, _, status, reason in hostile:
        answer = answers[name]
        assert answer.status_code == status, (name, answer.text)
        assert reason in answer.json()["error"], (name, answer.json())
    stream = ep.stream
    assert await wait_for(lambda: _has(js, stream, ep.subject, len(good)), 10)
    stored = await event_ids(js, stream, ep.subject)
    assert stored == dict.fromkeys(good, 1)  # nothing lost, nothing doubled, nothing hostile
    assert await count(js, wf.streams[0].name, f"kumeo.{wf.slug}.dlq.source") == 0  # the client was told


async def test_hostile_file_lines_are_dead_lettered_with_their_reason_and_line_and_the_rest_flows(setup,
                                                                                                   tmp_path) -> None:
    wf, nc, js = setup
    ep = _source(wf, "File")
    good = [json.dumps({"id": f"good-{i}", "amount": i}).encode() for i in range(20)]
    long_line = json.dumps({"id": "long", "blob": "y" * (LIMIT * 50)}).encode()  # 50 times the limit
    hostile = {
        "deep": (DEEP_UNDER_LIMIT.encode(), "JSON nested too deeply to decode"),
        "deep-and-long": (DEEP.encode(), "event of 20000 bytes is over the limit"),  # refused before decoding
        "nan": (b'{"amount": NaN}', "non-finite number NaN at $.amount is not JSON"),
        "inf": (b'{"amount": Infinity}', "non-finite number Infinity at $.amount is not JSON"),
        "latin1": (b'{"name": "caf\xe9"}', "the line is not UTF-8 (invalid byte 0xe9 at column 14)"),
        "long": (long_line, f"event of {len(long_line)} bytes is over the limit of {LIMIT} bytes"),
        "grown": (b'{"v": [' + b",".join([b"1e5"] * 900) + b"]}",  # short text, long once published
                  f"event of {len(json.dumps({'v': [100000.0] * 900}, separators=(',', ':')))} bytes is over"),
        "array": (b"[1, 2]", "expected a JSON object, got an array"),
        "broken": (b'{"id": ', "invalid JSON: Expecting value"),
    }
    lines: list[bytes] = []
    where: dict[str, int] = {}
    for i, line in enumerate(good):
        lines.append(line)
        if i < len(hostile):
            name = list(hostile)[i]
            lines.append(hostile[name][0])
            where[name] = len(lines)  # 1-based line number
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    source = FileSource(wf, ep, base_dir=tmp_path, follow=False)
    assert source.max_input_bytes == LIMIT
    await source.start(nc)
    try:
        await asyncio.wait_for(source.wait_finished(), 30)
    finally:
        await source.stop()
    assert source.published == len(good) and source.dead_lettered == len(hostile)

    stored = await messages(js, ep.stream, ep.subject)
    assert sorted(json.loads(m.data)["id"] for m in stored) == sorted(f"good-{i}" for i in range(20))
    assert len({m.headers["Kumeo-Event-Id"] for m in stored}) == len(good)  # one id each, none doubled
    dlq = f"kumeo.{wf.slug}.dlq.source"
    dead = await messages(js, wf.streams[0].name, dlq)
    assert len(dead) == len(hostile)
    by_line = {json.loads(m.data)["line"]: m for m in dead}
    for name, (text, reason) in hostile.items():
        msg = by_line[where[name]]
        body = json.loads(msg.data)
        assert msg.headers["Kumeo-Error"].startswith(f"in.jsonl:{where[name]}: "), (name, msg.headers)
        assert reason in msg.headers["Kumeo-Error"], (name, msg.headers["Kumeo-Error"])
        assert body["error"] == msg.headers["Kumeo-Error"]
        if len(text) <= 16 * 1024 and name != "latin1":
            assert body["input"] == text.decode()
        elif name != "latin1":  # too long to quote: its size and a preview travel instead
            assert "input" not in body and body["input_bytes"] == len(text)
            assert len(msg.data) < 2048


async def _has(js: Any, stream: str, subject: str, n: int) -> bool:
    return await count(js, stream, subject) >= n
