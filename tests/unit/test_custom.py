"""The Custom kind without NATS: Python entry points (sync, async, with the Event, from a file) and the WebAssembly
host (the ABI, time and memory limits, modules that break the contract)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime._agent import Event, EventRejected
from kumeo_iac.runtime.agents.custom import CustomAgent, parse_size
from kumeo_iac.runtime.wasm import (
    WasmError,
    WasmMemoryLimitExceeded,
    WasmModule,
    WasmRejected,
    WasmTimeLimitExceeded,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_code"

_ALLOC = '(func (export "alloc") (param i32) (result i32) i32.const 1024)'
LOOP_FOREVER = f'''(module (memory (export "memory") 1) {_ALLOC}
  (func (export "handle") (param i32 i32) (result i64) (loop $l (br $l)) i64.const 0))'''
GROW_FOREVER = f'''(module (memory (export "memory") 1) {_ALLOC}
  (func (export "handle") (param i32 i32) (result i64)
    (loop $l (if (i32.eq (memory.grow (i32.const 8)) (i32.const -1)) (then unreachable)) (br $l)) i64.const 0))'''
ECHO = f'''(module (memory (export "memory") 1) {_ALLOC}
  (func (export "handle") (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $n)))))'''


def _wat(tmp_path: Path, text: str, name: str = "m.wat") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _module(path: Path, **kw) -> WasmModule:
    kw.setdefault("time_limit", 1.0)
    kw.setdefault("memory_limit", 8 << 20)
    return WasmModule(path, name="Custom 'c'", **kw)


# -- the WebAssembly host ----------------------------------------------------------------------------------------


def test_the_example_module_wraps_the_event_it_is_given():
    module = _module(EXAMPLE / "annotate.wat")
    try:
        assert module.call({"order_id": "o-1", "note": "déjà vu"}) == {
            "checked_by": "wasm", "event": {"order_id": "o-1", "note": "déjà vu"}}
        # The shipped binary is the same module (built by build_wasm.py).
        assert _module(EXAMPLE / "annotate.wasm").call([1, 2]) == {"checked_by": "wasm", "event": [1, 2]}
    finally:
        module.close()


def test_a_module_that_loops_forever_is_stopped_at_its_time_limit(tmp_path):
    module = _module(_wat(tmp_path, LOOP_FOREVER), time_limit=0.2)
    started = time.perf_counter()
    with pytest.raises(WasmTimeLimitExceeded, match=r"exceeded its time limit \(0.2 s\)"):
        module.call({})
    assert time.perf_counter() - started < 1.5
    fuelled = _module(_wat(tmp_path, LOOP_FOREVER), time_limit=10, fuel=1_000_000)
    with pytest.raises(WasmTimeLimitExceeded, match=r"time limit \(fuel 1000000\)"):
        fuelled.call({})
    module.close()
    fuelled.close()


def test_a_module_that_grows_its_memory_too_much_fails_with_a_clear_error(tmp_path):
    module = _module(_wat(tmp_path, GROW_FOREVER), memory_limit=4 << 20)
    with pytest.raises(WasmMemoryLimitExceeded, match=r"exceeded its memory limit \(4 MiB\)"):
        module.call({})
    big = _module(_wat(tmp_path, ECHO.replace('(memory (export "memory") 1)', '(memory (export "memory") 200)')),
                  memory_limit=4 << 20)
    with pytest.raises(WasmMemoryLimitExceeded):
        big.call({})
    module.close()
    big.close()


def test_each_call_gets_a_fresh_instance_and_the_echo_returns_the_input(tmp_path):
    module = _module(_wat(tmp_path, ECHO))
    assert [module.call({"n": i}) for i in range(3)] == [{"n": 0}, {"n": 1}, {"n": 2}]
    with pytest.raises(WasmRejected, match="bad order"):
        module.call({"kumeo_error": "bad order"})
    module.close()


@pytest.mark.parametrize(("text", "message"), [
    ('(module (memory (export "memory") 1))', "does not export `alloc"),
    (f'(module {_ALLOC} (func (export "handle") (param i32 i32) (result i64) i64.const 0))',
     "does not export a `memory`"),
    (ECHO.replace("(module", '(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) '
                  "(result i32)))", 1),
     "imports wasi_snapshot_preview1.fd_write, which the Kumeo host does not provide"),
    ("(module (func", "is not a valid WebAssembly module"),
])
def test_modules_that_do_not_follow_the_abi_fail_at_load(tmp_path, text, message):
    with pytest.raises(KumeoRuntimeError, match=message):
        _module(_wat(tmp_path, text))


def test_output_outside_memory_or_not_json_is_an_error(tmp_path):
    outside = _module(_wat(tmp_path, ECHO.replace("(local.get $n)))))", "(i32.const 999999)))))")))
    with pytest.raises(WasmError, match="outside its memory"):
        outside.call({})
    not_json = _module(_wat(tmp_path, f'''(module (memory (export "memory") 1) (data (i32.const 0) "{{oops") {_ALLOC}
      (func (export "handle") (param i32 i32) (result i64) i64.const 5))'''))
    with pytest.raises(WasmError, match="not UTF-8 JSON"):
        not_json.call({})
    outside.close()
    not_json.close()


def test_sizes():
    assert parse_size("64Mi", "x") == 64 << 20 and parse_size("16MB", "x") == 16_000_000 and parse_size(512, "x") == 512
    with pytest.raises(KumeoRuntimeError, match="not a size"):
        parse_size("lots", "x")


# -- the agent ---------------------------------------------------------------------------------------------------


def _agent(settings, tmp_path=None, timeout=2.0):
    from types import SimpleNamespace

    plan = SimpleNamespace(id="c", kind="Custom", settings=settings, timeout_seconds=timeout)
    return CustomAgent(plan, SimpleNamespace(name="wf", slug="wf"), tmp_path or EXAMPLE)


async def test_a_sync_entry_point_runs_in_a_thread_and_may_reject():
    agent = _agent({"entrypoint": "handlers:enrich"})
    await agent.start()
    try:
        (emit,) = await agent.process(Event(id="e1", data={"amount": 2500}))
        assert emit.data == {"amount": 2500, "amount_cents": 250000, "size": "large"} and emit.subject is None
        with pytest.raises(EventRejected, match="needs an 'amount'"):
            await agent.process(Event(id="e2", data={}))
    finally:
        await agent.stop()


async def test_an_async_entry_point_with_the_event_returns_several_messages():
    agent = _agent({"entrypoint": "handlers:split_lines"})
    await agent.start()
    emits = await agent.process(Event(id="o7", data={"lines": [{"sku": "a"}, {"sku": "b"}]}))
    assert [e.data for e in emits] == [{"order": "o7", "line": 0, "sku": "a"}, {"order": "o7", "line": 1, "sku": "b"}]
    await agent.stop()


async def test_entry_points_from_files_and_their_mistakes(tmp_path):
    (tmp_path / "code.py").write_text("def f(p):\n    return None\n\ndef g(p):\n    return p['x']\n")
    agent = _agent({"entrypoint": "code.py:f"}, tmp_path)
    await agent.start()
    with pytest.raises(EventRejected, match="returned None; it must return a dict or a list of dicts"):
        await agent.process(Event(id="e", data={}))
    await agent.stop()
    agent = _agent({"entrypoint": "code.py:g"}, tmp_path)
    await agent.start()
    with pytest.raises(KeyError):  # any other exception is transient: the worker retries it
        await agent.process(Event(id="e", data={}))
    await agent.stop()
    for settings, message in [
        ({"entrypoint": "nowhere_at_all:f"}, "no module 'nowhere_at_all'"),
        ({"entrypoint": "code.py:missing"}, "has no 'missing'"),
        ({"entrypoint": "code"}, 'must be "package.module:function"'),
        ({}, "needs 'entrypoint'"),
        ({"entrypoint": "code.py:f", "wasm": {"file": "x.wasm"}}, "not both"),
        ({"wasm": {"file": "absent.wasm"}}, "absent.wasm not found"),
        ({"wasm": "m.wat", "config": {"memory_limit": "lots"}}, "config.memory_limit 'lots' is not a size"),
    ]:
        with pytest.raises(KumeoRuntimeError, match=message):
            await _agent(settings, tmp_path).start()


async def test_a_slow_sync_entry_point_times_out(tmp_path):
    (tmp_path / "slow.py").write_text("import time\ndef f(p):\n    time.sleep(1)\n    return p\n")
    agent = _agent({"entrypoint": "slow.py:f"}, tmp_path, timeout=0.2)
    await agent.start()
    with pytest.raises(TimeoutError):
        await agent.process(Event(id="e", data={}))
    await agent.stop()


async def test_wasm_limits_reject_the_event(tmp_path):
    _wat(tmp_path, LOOP_FOREVER, "loop.wat")
    agent = _agent({"wasm": {"file": "loop.wat"}, "config": {"time_limit": "100ms"}}, tmp_path)
    await agent.start()
    with pytest.raises(EventRejected, match="exceeded its time limit"):
        await agent.process(Event(id="e", data={}))
    await agent.stop()
