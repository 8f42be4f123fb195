"""What every benchmark shares: the machine's description, load average, percentiles, RSS, JSON results and plots.

Each ``bench_*.py`` stays a plain script (``make bench`` runs them one by one); it calls :func:`write_result` with its
figures, which lands in ``benchmarks/results/<name>.json`` beside the machine it ran on and the load average before
and after, and :func:`plot` for a PNG (matplotlib's Agg backend; skipped with a note when matplotlib is missing).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def load_average() -> float:
    """The 1-minute load average (other engineers share this machine: every figure carries it)."""
    return round(os.getloadavg()[0], 2)


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, Python and nats-server versions of this machine."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    nats_version = "unknown"
    try:
        from kumeo_iac.local._nats_server import find_nats_server_binary

        nats_version = subprocess.run([str(find_nats_server_binary()), "--version"], capture_output=True,
                                      text=True, timeout=10, check=False).stdout.strip()
    except Exception:  # noqa: BLE001 - a description, not a requirement
        pass
    try:
        from importlib.metadata import version

        nats_py = version("nats-py")
    except Exception:  # noqa: BLE001
        nats_py = "unknown"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory_gib,
            "python": platform.python_version(), "nats_server": nats_version, "nats_py": nats_py,
            "platform": platform.platform()}


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) of already sorted values, nearest rank."""
    if not sorted_values:
        return math.nan
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[rank])


def rss_mib(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default), in MiB, from /proc."""
    path = f"/proc/{pid or 'self'}/status"
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def fit_exponent(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """The exponent k of ``seconds ≈ c · size^k``, least squares on log-log (1.0 is linear growth)."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(max(t, 1e-9)) for t in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else math.nan


class Result:
    """One benchmark's figures, written as JSON with the machine and the load average around the run."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.time()
        self.load_before = load_average()
        self.figures: dict[str, Any] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.figures[key] = value

    def write(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        data = {"benchmark": self.name, "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
                "seconds": round(time.time() - self.started, 2), "load_before": self.load_before,
                "load_after": load_average(), "machine": machine(), "figures": self.figures}
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"  results: {path.relative_to(ROOT)}  (load average {self.load_before} → {data['load_after']}, "
              f"{os.cpu_count()} CPUs)")
        return path


def plot(name: str, draw: Callable[[Any], None], *, size: tuple[float, float] = (7.0, 4.2)) -> Path | None:
    """Draw a figure with ``draw(axes_or_figure)`` and save it as ``benchmarks/results/<name>.png``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"  plot {name}.png skipped: matplotlib is not installed (pip install matplotlib)")
        return None
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=size)
    draw(fig)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"  plot: {path.relative_to(ROOT)}")
    return path
