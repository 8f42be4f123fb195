"""100k mutated `.kumeo` files and 100k mutated expressions: only located KumeoErrors come out (see fuzz.py).

Both run in CI on 2 processes: ~2–3k cases/s each here, so ~35 s per 100k on an idle 2-core machine. Set
``KUMEO_FUZZ_CASES`` to run more (or fewer) and ``KUMEO_FUZZ_FIRST_SEED`` to explore other seeds; a finding names
its seed, replayed with ``python tests/faults/fuzz.py kumeo|expr SEED``.
"""

from __future__ import annotations

import os
import time

import pytest
from fuzz import run

CASES = int(os.environ.get("KUMEO_FUZZ_CASES", "100000"))
FIRST_SEED = int(os.environ.get("KUMEO_FUZZ_FIRST_SEED", "0"))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["kumeo", "expr"])
def test_fuzzed_inputs_raise_only_located_kumeo_errors(kind):
    began = time.perf_counter()
    findings = run(kind, CASES, first_seed=FIRST_SEED, workers=2)
    elapsed = time.perf_counter() - began
    print(f"{kind}: {CASES} cases in {elapsed:.1f} s ({CASES / elapsed:,.0f}/s), {len(findings)} findings")
    assert not findings, f"{len(findings)} findings, e.g.:\n" + "\n\n".join(findings[:3])


def test_a_file_name_too_long_for_the_file_system_is_a_diagnostic_not_an_oserror(tmp_path):
    """Regression (fuzz seed 966): ``Path.exists`` raises ENAMETOOLONG; validate must report it, not crash."""
    from kumeo_iac.lang import parse
    from kumeo_iac.validate import validate

    name = "m" * 5000 + ".onnx"
    text = (f'workflow W {{\n  source: NATS("in")\n  target: NATS("out")\n'
            f'  agents: [ MLModel("{name}", id: "score", input: source) ]\n}}\n')
    result = parse(text, str(tmp_path / "w.kumeo"))
    diagnostics = validate(result.program, base_dir=tmp_path)
    found = [d for d in diagnostics if "not a usable path" in d.message]
    assert len(found) == 1 and found[0].span is not None and found[0].span.line == 4
    assert not found[0].is_error  # like any missing file in `kumeo check`: a warning
