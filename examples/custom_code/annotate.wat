;; A Kumeo Custom agent in WebAssembly text (the JSON-in/JSON-out ABI, see docs/agents.md "Custom").
;; It wraps the event it receives: {"checked_by": "wasm", "event": <the input JSON>}.
;; Build annotate.wasm with `python build_wasm.py` (wasmtime.wat2wasm); the agent also loads this .wat directly.
(module
  (import "kumeo" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  ;; Bytes 0..255 hold constants; the bump allocator hands out memory from 1024 on (one call per fresh instance).
  (data (i32.const 0) "{\"checked_by\":\"wasm\",\"event\":")   ;; 29 bytes
  (data (i32.const 64) "}")
  (data (i32.const 128) "annotating one event")             ;; 20 bytes
  (global $heap (mut i32) (i32.const 1024))

  ;; alloc(len) -> ptr: bump allocation, growing memory a page at a time; traps when growing is refused.
  (func $alloc (export "alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (local.get $ptr) (local.get $len)))
    (block $enough
      (loop $grow
        (br_if $enough (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (local.get $ptr))

  ;; handle(ptr, len) -> (out_ptr << 32) | out_len
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (local $out i32)
    (local $total i32)
    (call $log (i32.const 128) (i32.const 20))
    (local.set $total (i32.add (local.get $len) (i32.const 30)))
    (local.set $out (call $alloc (local.get $total)))
    (memory.copy (local.get $out) (i32.const 0) (i32.const 29))
    (memory.copy (i32.add (local.get $out) (i32.const 29)) (local.get $ptr) (local.get $len))
    (memory.copy (i32.add (local.get $out) (i32.add (i32.const 29) (local.get $len))) (i32.const 64) (i32.const 1))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (local.get $total))))
)
