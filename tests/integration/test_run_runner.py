"""The local runner behind `kumeo run`: start, publish, drain (both rules), time out, clean up."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from kumeo_iac import cli
from kumeo_iac.compile import compile_program
from kumeo_iac.local import LocalRunner, Output
from kumeo_iac.validate import load

pytestmark = [pytest.mark.nats, pytest.mark.timeout(90)]

ORDERS = """
workflow Orders {
  source: NATS("orders.new")
  target: [NATS("orders.big"), NATS("orders.small"), File("out/all.jsonl", id: "all")]
  agents: [
    MissingValueHandler("constant", id: "fill", input: source, fields: ["amount"], value: 0),
    RuleEngine(id: "size", input: fill.output, hit_policy: "first", rules: [
      { name: "big", when: "amount > 100", set: { size: "big" } },
      { name: "small", when: "true", set: { size: "small" } }
    ]),
    Router(id: "route", input: size.output, rules: {
      "size == 'big'": "target.orders.big",
      "default": "target.orders.small"
    }),
    DataProcessor(id: "log", input: size.output, output: "target.all")
  ]
}
"""


def plan_of(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "wf.kumeo"
    path.write_text(text)
    return compile_program(load(path, strict_files=True), base_dir=tmp_path)


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


async def test_runner_drains_when_every_event_reached_a_target(tmp_path: Path) -> None:
    outputs: list[Output] = []
    runner = LocalRunner(plan_of(tmp_path, ORDERS), base_dir=tmp_path, on_output=outputs.append)
    async with runner:
        pid = runner.server.pid
        assert runner.output_subjects() == ["orders.big", "orders.small", "kumeo.orders.target.all",
                                            "kumeo.orders.dlq.>"]
        events = [(f"e{i}", {"n": i, "amount": i * 60}) for i in range(4)] + [("e9", {"n": 9})]
        assert await runner.publish("orders.new", events) == 5
        result = await runner.drain(30)
        assert result.drained and result.holding == [] and result.unreached == []
        await asyncio.sleep(0.2)
    assert not alive(pid)
    routed = sorted((o.event_id, o.subject) for o in outputs if o.subject.startswith("orders."))
    assert routed == [("e0", "orders.small"), ("e1", "orders.small"), ("e2", "orders.big"), ("e3", "orders.big"),
                      ("e9", "orders.small")]
    # The fan-out to the File target is waited for too: the file holds every event once drain() returns.
    lines = [json.loads(line) for line in (tmp_path / "out" / "all.jsonl").read_text().splitlines()]
    assert sorted(d["n"] for d in lines) == [0, 1, 2, 3, 9]
    assert {d["n"]: d["amount"] for d in lines}[9] == 0
    assert runner.results == 10 and runner.dead_letters == 0


async def test_http_ingest_flows_through_the_workflow(tmp_path: Path) -> None:
    text = ORDERS.replace('source: NATS("orders.new")', 'source: HTTP("/orders")')
    outputs: list[Output] = []
    async with LocalRunner(plan_of(tmp_path, text), base_dir=tmp_path, on_output=outputs.append) as runner:
        [source] = runner.gateways[0].sources
        async with httpx.AsyncClient() as client:
            answer = await client.post(source.url, json=[{"amount": 500}, {"amount": 5}])
        assert answer.status_code == 202
        ids = answer.json()["event_ids"]
        result = await runner.drain(30)
        assert result.drained
    assert sorted((o.event_id, o.subject) for o in outputs if o.subject.startswith("orders.")) == sorted(
        [(ids[0], "orders.big"), (ids[1], "orders.small")])


async def test_quiet_period_ends_a_drain_when_an_event_is_held_in_a_join(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, """
workflow Join {
  source: [NATS("left.in", id: "left"), NATS("right.in", id: "right")]
  target: NATS("joined.out")
  agents: [ RuleEngine(id: "both", input: { l: source.left, r: source.right },
                       rules: [{ name: "any", when: "true", set: { ok: true } }]) ]
}
""")
    async with LocalRunner(plan, base_dir=tmp_path) as runner:
        await runner.publish("left.in", [("only-left", {"x": 1})])
        result = await runner.drain(30, quiet=0.3)
    assert result.drained and result.unreached == ["only-left"]
    assert result.elapsed < 10


async def test_drain_times_out_naming_who_holds_events(tmp_path: Path) -> None:
    silent = await asyncio.start_server(lambda r, w: asyncio.sleep(60), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}/hook"
    plan = plan_of(tmp_path, f"""
workflow Slow {{
  source: NATS("slow.in")
  target: HTTP("{url}", {{ timeout: "30s" }})
  agents: [ DataProcessor(id: "pass", input: source) ]
}}
""")
    try:
        async with LocalRunner(plan, base_dir=tmp_path) as runner:
            await runner.publish("slow.in", [("e1", {"a": 1})])
            result = await runner.drain(1.5)
            assert not result.drained
            assert result.holding == [f"target '{url}' (0 waiting, 1 in progress)"]
    finally:
        silent.close()


async def test_runner_uses_a_given_server_and_leaves_it_running(nats_server: Any, tmp_path: Path) -> None:
    outputs: list[Output] = []
    async with LocalRunner(plan_of(tmp_path, ORDERS), base_dir=tmp_path, nats_url=nats_server.url,
                           on_output=outputs.append) as runner:
        assert runner.server is None and not runner.embedded
        await runner.publish("orders.new", [("x1", {"amount": 1000})])
        assert (await runner.drain(30)).drained
    assert nats_server.is_running
    assert ("x1", "orders.big") in {(o.event_id, o.subject) for o in outputs}


async def test_a_failing_agent_start_stops_everything(tmp_path: Path) -> None:
    import dataclasses

    from kumeo_iac.compile import Plan

    plan = plan_of(tmp_path, ORDERS)
    wf = plan.workflows[0]
    # As if Router's runtime class were not installed here: the plan names a handler that cannot be imported.
    agents = [dataclasses.replace(a, handler="kumeo_no_such_module:RouterAgent") if a.kind == "Router" else a
              for a in wf.agents]
    runner = LocalRunner(Plan([dataclasses.replace(wf, agents=agents)]), base_dir=tmp_path)
    with pytest.raises(Exception, match="agent 'route': agent kind 'Router': runtime handler "
                                        "'kumeo_no_such_module:RouterAgent': no module 'kumeo_no_such_module'"):
        await runner.start()
    assert runner.server is not None and not runner.server.is_running
    assert len(runner.workers) == 2 and all(w.nc.is_closed for w in runner.workers)  # the two that had started


def test_cli_run_llm_local_without_the_server_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "wf.kumeo"
    path.write_text(ORDERS)
    code = cli.main(["run", str(path), "--input", str(_events(tmp_path)), "--llm", "local"])
    err = capsys.readouterr().err
    if importlib.util.find_spec("kumeo_iac.local._llm") is None:
        assert code == 1
        assert "--llm local needs the embedded LLM server (kumeo_iac.local._llm)" in err
    else:  # the module has landed: a workflow without LLM agents starts no server
        assert code == 0
        assert "--llm local: the workflow has no LLM agent" in err


def test_cli_run_in_process_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "wf.kumeo"
    path.write_text(ORDERS)
    assert cli.main(["run", str(path), "--input", str(_events(tmp_path))]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 4  # 2 routed + 2 in the File target
    assert cli.main(["run", str(path), "--input", str(tmp_path / "missing.jsonl")]) == 1
    assert f"{tmp_path / 'missing.jsonl'}: error: no such file" in capsys.readouterr().err
    assert cli.main(["run", str(path), "--input", "-", "--timeout", "0"]) == 2


def _events(tmp_path: Path) -> Path:
    events = tmp_path / "events.jsonl"
    events.write_text('{"amount": 1}\n{"amount": 1000}\n')
    return events


REVIEWS = """
workflow Reviews {
  source: NATS("claims.in")
  target: NATS("claims.done")
  agents: [
    HumanReview(id: "adjuster", trigger: "amount > 10", config: { timeout: "1h" })
  ]
}
"""


async def test_the_review_api_url_the_runner_reports_is_the_review_api_and_it_needs_a_token(
        tmp_path: Path) -> None:
    async with LocalRunner(plan_of(tmp_path, REVIEWS), base_dir=tmp_path) as runner:
        urls = runner.agent_urls()
        assert set(urls) == {"adjuster"}
        assert urls["adjuster"].startswith("http://127.0.0.1:") and urls["adjuster"].endswith("/reviews")
        async with httpx.AsyncClient(timeout=5) as client:
            listed = await client.get(urls["adjuster"])
            decided = await client.post(f"{urls['adjuster']}/nope/approve", json={"reviewer": "anyone@anywhere"})
        assert listed.status_code == 200 and listed.json() is not None  # reads are answered on loopback
        assert decided.status_code == 403  # no verifier configured: no approval at all, anonymous or not
