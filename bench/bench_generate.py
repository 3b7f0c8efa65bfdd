"""How fast the sandbox country is generated, and how much memory it takes (goal: 1M people < 2 min, < 4 GB).

Each run is a fresh interpreter, so the peak memory is that run's own (the child reports its
`ru_maxrss`), and the time includes the interpreter start, as a user of `kiungo sandbox generate`
would see it.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.stats import median

BASELINE = 100_000
SIZES = ((BASELINE, 3), (1_000_000, 1))  # (people, runs): one run at 1M keeps `make bench` short
GOAL_SECONDS = 120.0
GOAL_MB = 4096.0
SEED = 1


def _child(people: int, out: Path) -> None:
    """Run inside the measured subprocess: generate, then report this process's peak memory."""
    from sandbox.generator import generate

    generate(people=people, seed=SEED, out=out, progress=False)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(json.dumps({"peak_mb": peak_kb / 1024}))


def _run(people: int) -> tuple[float, float]:
    """(wall seconds, peak MB) of one generation in a fresh interpreter."""
    with tempfile.TemporaryDirectory(prefix="kiungo-bench-") as tmp:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "bench.bench_generate", "--child", str(people), tmp],
            check=True,
            capture_output=True,
            cwd=Path(__file__).resolve().parent.parent,  # `bench` is found from the repository root
            text=True,
        )
        seconds = time.perf_counter() - started
    return seconds, float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"])


def main() -> None:
    console = Console()
    results: dict[int, tuple[float, float]] = {}
    for people, runs in SIZES:
        measured = [_run(people) for _ in range(runs)]
        results[people] = (median([s for s, _ in measured]), max(mb for _, mb in measured))

    table = Table(
        title=(
            "sandbox generate: median of 3 runs at 100k, 1 run at 1M (fresh interpreter each); "
            f"goal at 1M: < {GOAL_SECONDS:.0f} s and < {GOAL_MB:,.0f} MB"
        )
    )
    for column in ("people", "runs", "seconds", "peak MB", "µs/person", "per-person vs 100k", "within goal"):
        table.add_column(column, justify="right")
    base_per_person = results[BASELINE][0] / BASELINE
    for people, runs in SIZES:
        seconds, peak = results[people]
        per_person = seconds / people
        if people == BASELINE:
            goal = "baseline"
        else:
            ok = seconds < GOAL_SECONDS * people / 1_000_000 and peak < GOAL_MB
            goal = "yes" if ok else "NO"
        table.add_row(
            f"{people:,}",
            str(runs),
            f"{seconds:.1f}",
            f"{peak:,.0f}",
            f"{per_person * 1e6:.1f}",
            f"{per_person / base_per_person:.2f}",
            goal,
        )
    console.print(table)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
