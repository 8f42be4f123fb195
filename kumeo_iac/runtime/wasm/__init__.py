"""The WebAssembly host of the Custom agent kind: a JSON-in/JSON-out ABI run by wasmtime under time and memory
limits (see ``_host.py`` for the ABI)."""

from kumeo_iac.runtime.wasm._host import (
    TICK_SECONDS,
    WasmError,
    WasmMemoryLimitExceeded,
    WasmModule,
    WasmRejected,
    WasmTimeLimitExceeded,
)

__all__ = [
    "TICK_SECONDS",
    "WasmError",
    "WasmMemoryLimitExceeded",
    "WasmModule",
    "WasmRejected",
    "WasmTimeLimitExceeded",
]
