"""Compile annotate.wat into annotate.wasm (the binary the example workflow loads): ``python build_wasm.py``."""

from pathlib import Path

import wasmtime

here = Path(__file__).parent
(here / "annotate.wasm").write_bytes(wasmtime.wat2wasm((here / "annotate.wat").read_text()))
print(f"wrote {here / 'annotate.wasm'}")
