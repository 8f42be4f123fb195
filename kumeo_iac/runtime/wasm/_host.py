"""Run a WebAssembly module on one JSON event with wasmtime, under a time limit and a memory limit.

**The ABI** (JSON in, JSON out, UTF-8):

- the module exports ``memory``, ``alloc(len: i32) -> i32`` and ``handle(ptr: i32, len: i32) -> i64``;
- the host calls ``alloc(n)`` for the input, writes the event's JSON there, calls ``handle(ptr, n)``, which
  returns ``(out_ptr << 32) | out_len``; the host reads that many bytes of JSON from ``memory``;
- the result is an object (one message), a list of objects (several), or ``{"kumeo_error": "why"}`` to reject
  the event;
- the module may import ``kumeo.log(ptr: i32, len: i32)`` to write a UTF-8 line to the agent's log; no other
  import is provided (no WASI: a module cannot reach files, clocks or the network).

**Isolation.** The module is compiled once; every call gets a fresh ``Store`` and instance, so nothing leaks
from one event to the next and the limits apply per event:

- time: epoch interruption — a ticker thread advances the engine's epoch every ``TICK_SECONDS`` and each call's
  store has a deadline of ``time_limit`` in ticks (optionally also ``fuel``, a deterministic instruction budget);
- memory: ``store.set_limits(memory_size=…)``; ``memory.grow`` past it fails (returns -1) and a module declaring
  more initial memory than the limit cannot be instantiated.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path
from typing import Any, Final, cast

import wasmtime

from kumeo_iac.errors import KumeoRuntimeError
from kumeo_iac.runtime.dmx import redact_quotes

__all__ = [
    "TICK_SECONDS",
    "WasmError",
    "WasmMemoryLimitExceeded",
    "WasmModule",
    "WasmRejected",
    "WasmTimeLimitExceeded",
]

log = logging.getLogger("kumeo.runtime.wasm")

TICK_SECONDS: Final = 0.01
_PAGE: Final = 65536
_REJECT_KEY: Final = "kumeo_error"


class WasmError(KumeoRuntimeError):
    """The module failed on this event (a trap, a broken ABI contract, output that is not JSON)."""


class WasmTimeLimitExceeded(WasmError):
    """The module ran past its time limit (or fuel) and was stopped."""


class WasmMemoryLimitExceeded(WasmError):
    """The module needed more linear memory than its limit."""


class WasmRejected(WasmError):
    """The module itself rejected the event (``{"kumeo_error": …}``)."""


class _Ticker:
    """Advances an engine's epoch every tick while at least one module of the engine is open."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kumeo-wasm-epoch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self.engine.increment_epoch()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1.0)


class WasmModule:
    """One compiled module following the Kumeo ABI; :meth:`call` is thread-safe and blocking."""

    def __init__(self, path: Path, *, name: str, time_limit: float, memory_limit: int,
                 fuel: int | None = None) -> None:
        self.path = path
        self.name = name
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self.fuel = fuel
        config = wasmtime.Config()
        config.epoch_interruption = True
        if fuel is not None:
            config.consume_fuel = True
        self.engine = wasmtime.Engine(config)
        self.module = self._compile(path)
        self._check_abi()
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_func("kumeo", "log", wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i32()], []),
                                self._log, access_caller=True)
        self._ticker: _Ticker | None = _Ticker(self.engine)

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.close()
            self._ticker = None

    # -- loading ---------------------------------------------------------------------------------------------

    def _compile(self, path: Path) -> wasmtime.Module:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KumeoRuntimeError(f"{self.name}: WebAssembly module {path} not found") from None
        except OSError as exc:
            raise KumeoRuntimeError(f"{self.name}: cannot read {path}: {exc.strerror or exc}") from None
        try:
            if path.suffix == ".wat":
                data = bytes(wasmtime.wat2wasm(data.decode("utf-8")))
            return wasmtime.Module(self.engine, data)
        except (wasmtime.WasmtimeError, UnicodeDecodeError) as exc:
            raise KumeoRuntimeError(f"{self.name}: {path} is not a valid WebAssembly module: "
                                    f"{redact_quotes(_first_line(exc))}") from None

    def _check_abi(self) -> None:
        exports = {e.name: e.type for e in self.module.exports}
        problems = []
        if not isinstance(exports.get("memory"), wasmtime.MemoryType):
            problems.append("a `memory`")
        if not _func_is(exports.get("alloc"), ["i32"], ["i32"]):
            problems.append("`alloc(len: i32) -> i32`")
        if not _func_is(exports.get("handle"), ["i32", "i32"], ["i64"]):
            problems.append("`handle(ptr: i32, len: i32) -> i64`")
        if problems:
            raise KumeoRuntimeError(f"{self.name}: {self.path} does not export {', '.join(problems)} as the Kumeo "
                                    "WebAssembly ABI requires (see docs/agents.md, Custom)")
        for imp in self.module.imports:
            if (imp.module, imp.name) != ("kumeo", "log"):
                raise KumeoRuntimeError(
                    f"{self.name}: {self.path} imports {imp.module}.{imp.name}, which the Kumeo host does not "
                    "provide (only kumeo.log; WASI is not available)")

    # -- one call --------------------------------------------------------------------------------------------

    def call(self, data: Any) -> Any:
        """Run ``handle`` on ``data`` (JSON-serialisable) and return the decoded JSON result."""
        raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=self.memory_limit)
        store.set_epoch_deadline(max(1, math.ceil(self.time_limit / TICK_SECONDS)))
        if self.fuel is not None:
            store.set_fuel(self.fuel)
        memory: wasmtime.Memory | None = None
        try:
            instance = self.linker.instantiate(store, self.module)
            exports = instance.exports(store)
            # _check_abi made sure of these exports' types when the module was loaded
            memory = cast(wasmtime.Memory, exports["memory"])
            alloc, handle = cast(wasmtime.Func, exports["alloc"]), cast(wasmtime.Func, exports["handle"])
            ptr = alloc(store, len(raw))
            self._check_range(store, memory, ptr, len(raw), "alloc returned")
            memory.write(store, raw, ptr)
            packed = handle(store, ptr, len(raw)) & 0xFFFF_FFFF_FFFF_FFFF
            out_ptr, out_len = packed >> 32, packed & 0xFFFF_FFFF
            self._check_range(store, memory, out_ptr, out_len, "handle returned")
            out = bytes(memory.read(store, out_ptr, out_ptr + out_len))
        except wasmtime.Trap as trap:
            raise self._trap_error(trap, store, memory) from None
        except wasmtime.WasmtimeError as exc:
            text = _first_line(exc)
            if "memory" in text and ("limit" in text or "exceeds" in text):
                raise self._memory_error() from None
            raise WasmError(f"{self.name}: {text}") from None
        finally:
            store.close()
        try:
            result = json.loads(out.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise WasmError(f"{self.name}: handle's output is not UTF-8 JSON ({exc}): {out[:80]!r}") from None
        if isinstance(result, dict) and set(result) == {_REJECT_KEY}:
            raise WasmRejected(f"{self.name}: {result[_REJECT_KEY]}")
        return result

    def _check_range(self, store: wasmtime.Store, memory: wasmtime.Memory, ptr: int, length: int, what: str) -> None:
        size = memory.data_len(store)
        if ptr < 0 or ptr + length > size:
            raise WasmError(f"{self.name}: {what} bytes {ptr}..{ptr + length}, outside its memory ({size} bytes)")

    def _trap_error(self, trap: wasmtime.Trap, store: wasmtime.Store, memory: wasmtime.Memory | None) -> WasmError:
        code = trap.trap_code
        if code == wasmtime.TrapCode.INTERRUPT:
            return WasmTimeLimitExceeded(f"{self.name}: exceeded its time limit ({self.time_limit:g} s) and was "
                                         "stopped")
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            return WasmTimeLimitExceeded(f"{self.name}: exceeded its time limit (fuel {self.fuel}) and was stopped")
        # memory.grow past the limit returns -1 and the module then traps (unreachable, out of bounds) without
        # saying why. Blame the limit when at least half of it is in use: a module growing its memory step by
        # step (an allocator, a leak) fails that way; the message says how much was in use either way.
        used = 0
        if memory is not None:
            try:
                used = memory.data_len(store)
            except Exception:  # noqa: BLE001 - the store is unusable after some traps
                used = 0
            if used + _PAGE > self.memory_limit or (
                    code in (wasmtime.TrapCode.UNREACHABLE, wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS)
                    and used * 2 >= self.memory_limit):
                return self._memory_error()
        return WasmError(f"{self.name}: trapped: {_first_line(trap)} (memory in use: {_size(used)} of "
                         f"{_size(self.memory_limit)})")

    def _memory_error(self) -> WasmMemoryLimitExceeded:
        return WasmMemoryLimitExceeded(
            f"{self.name}: exceeded its memory limit ({_size(self.memory_limit)}); raise config.memory_limit "
            "if the module really needs more")

    def _log(self, caller: wasmtime.Caller, ptr: int, length: int) -> None:
        memory = caller["memory"]
        if isinstance(memory, wasmtime.Memory) and ptr >= 0 and ptr + length <= memory.data_len(caller):
            text = bytes(memory.read(caller, ptr, ptr + min(length, 4096))).decode("utf-8", "replace")
            log.info("%s: %s", self.name, text)


def _func_is(ty: Any, params: list[str], results: list[str]) -> bool:
    if not isinstance(ty, wasmtime.FuncType):
        return False
    return [str(p) for p in ty.params] == params and [str(r) for r in ty.results] == results


def _first_line(exc: BaseException) -> str:
    """The line of a wasmtime error that says what happened (its cause, not the backtrace header)."""
    lines = [line.strip() for line in str(getattr(exc, "message", None) or exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if "Caused by:" in lines:
        return lines[-1].removeprefix("wasm trap: ")
    return lines[0]


def _size(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n} bytes"
