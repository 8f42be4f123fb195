"""Train the IsolationForest behind the fraud example and export it to ONNX.

Run from the repository root with scikit-learn and skl2onnx installed (they are not runtime dependencies):
    python examples/fraud_detection/models/train_isolation_forest.py

The training data is synthetic and seeded, so the exported model is reproducible. Features, in input order:
amount, hour, merchant_category, country_mismatch (all float32).

The ONNX graph outputs ``label`` (1 normal, -1 anomaly) and ``scores`` (sklearn's ``decision_function``). The
model's ``offset_`` is stored in the ONNX metadata as ``kumeo.score_offset`` so the MLModel agent can turn
``scores`` back into the paper's anomaly score, ``-(scores + offset_) == -score_samples(x)`` in (0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skl2onnx import to_onnx
from sklearn.ensemble import IsolationForest

FEATURES = ["amount", "hour", "merchant_category", "country_mismatch"]
HERE = Path(__file__).resolve().parent


def normal_transactions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Everyday card use: modest amounts, daytime hours, a handful of merchant categories, home country."""
    amount = rng.lognormal(mean=3.5, sigma=0.8, size=n)
    hour = np.clip(rng.normal(14, 4, size=n), 0, 23).round()
    merchant = rng.integers(0, 8, size=n)
    mismatch = (rng.random(n) < 0.03).astype(float)
    return np.column_stack([amount, hour, merchant, mismatch]).astype(np.float32)


def main() -> None:
    rng = np.random.default_rng(7)
    x = normal_transactions(rng, 4000)
    model = IsolationForest(n_estimators=60, max_samples=256, contamination=0.02, random_state=7).fit(x)
    onx = to_onnx(model, x[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    entry = onx.metadata_props.add()
    entry.key, entry.value = "kumeo.score_offset", repr(float(model.offset_))
    out = HERE / "isolation_forest.onnx"
    out.write_bytes(onx.SerializeToString())
    print(f"wrote {out} ({out.stat().st_size} bytes), features: {', '.join(FEATURES)}")


if __name__ == "__main__":
    main()
