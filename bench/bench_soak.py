"""A sustained run: exchanges through two gateways at about 80% of their measured capacity, for ten
minutes (KIUNGO_SOAK_SECONDS), in 30-second windows, to show latency and memory stay flat.

wrk is closed-loop; a per-request delay in its Lua script holds the rate near the target, calibrated
once against the measured capacity. Memory is each gateway process's resident set after each window.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import wrk
from bench.bench_gateway import Case, running
from bench.stats import median

SOAK_SECONDS = int(os.environ.get("KIUNGO_SOAK_SECONDS", "600"))
#: The provider keeps every message id for the replay window (600 s by default): its memory grows for a
#: whole window, then levels off. The soak uses a shorter window so that the level shows within the run.
REPLAY_WINDOW = float(os.environ.get("KIUNGO_SOAK_REPLAY_WINDOW", "120"))
WINDOW = 30
CONNECTIONS = 8
SHARE = 0.8


@dataclass(frozen=True)
class Window:
    second: int
    load: wrk.Load
    rss_mb: dict[str, float]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def paced(case: Case, *, seconds: int, delay_ms: float) -> wrk.Load:
    """wrk with `delay_ms` between one connection's answer and its next request."""
    return wrk.run(case.url, headers=case.headers, seconds=seconds, connections=CONNECTIONS, delay_ms=round(delay_ms))


def main() -> None:
    console = Console(width=160)
    if not wrk.available():
        console.print("[yellow]bench_soak skipped: wrk is not installed (apt-get install wrk)[/yellow]")
        return
    with running(replay_window=REPLAY_WINDOW) as cases:
        case = next(c for c in cases if c.protocol == "REST" and c.path == "two gateways")
        wrk.run(case.url, headers=case.headers, seconds=3)  # warm-up
        capacity = wrk.run(case.url, headers=case.headers, seconds=10).rps
        target = SHARE * capacity
        delay = max(0.0, 1000 * CONNECTIONS * (1 / target - 1 / capacity))  # period = own time + delay
        probe = paced(case, seconds=10, delay_ms=delay)
        # one correction: the delay adds to each request's own time, so scale by what was reached
        delay = max(0.0, delay + 1000 * CONNECTIONS * (1 / target - 1 / max(probe.rps, 1.0)))
        windows: list[Window] = []
        pids = {role: pid for role, pid in case.pids.items() if role in ("consumer", "provider")}
        start_rss = {role: rss_mb(pid) for role, pid in pids.items()}
        for second in range(0, SOAK_SECONDS, WINDOW):
            load = paced(case, seconds=min(WINDOW, SOAK_SECONDS - second), delay_ms=delay)
            windows.append(Window(second, load, {role: rss_mb(pid) for role, pid in pids.items()}))
            print(
                f"  soak {second + WINDOW:>4} s: {load.rps:,.0f} req/s, p50 {load.p50_ms:.1f} ms, "
                f"p99 {load.p99_ms:.1f} ms, errors {load.bad}",
                flush=True,
            )
    report(console, capacity, target, start_rss, windows)


def report(
    console: Console, capacity: float, target: float, start_rss: dict[str, float], windows: list[Window]
) -> None:
    table = Table(
        "minute",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "RSS consumer MB",
        "RSS provider MB",
        title=(
            f"Sustained load, REST through two gateways: {SOAK_SECONDS} s in {WINDOW}-s windows at a target of "
            f"{target:,.0f} req/s ({SHARE:.0%} of the {capacity:,.0f} req/s measured just before, "
            f"{CONNECTIONS} connections); replay window {REPLAY_WINDOW:g} s (the provider keeps each message id "
            f"that long, in process); RSS at start: consumer {start_rss.get('consumer', 0):.0f} MB, "
            f"provider {start_rss.get('provider', 0):.0f} MB"
        ),
    )
    for w in windows:
        table.add_row(
            f"{(w.second + WINDOW) / 60:.1f}",
            f"{w.load.rps:,.0f}",
            f"{w.load.p50_ms:.2f}",
            f"{w.load.p99_ms:.2f}",
            str(w.load.bad),
            f"{w.rss_mb.get('consumer', 0):.0f}",
            f"{w.rss_mb.get('provider', 0):.0f}",
        )
    console.print(table)
    if len(windows) >= 4:
        first, last = windows[: len(windows) // 4], windows[-(len(windows) // 4) :]
        p50_ratio = median([w.load.p50_ms for w in last]) / median([w.load.p50_ms for w in first])
        p99_ratio = median([w.load.p99_ms for w in last]) / median([w.load.p99_ms for w in first])
        settled = [w for w in windows if w.second >= REPLAY_WINDOW + WINDOW] or windows
        growth = {role: windows[-1].rss_mb[role] - settled[0].rss_mb[role] for role in windows[0].rss_mb}
        console.print(
            f"last quarter against first quarter: p50 ×{p50_ratio:.2f}, p99 ×{p99_ratio:.2f}; RSS growth once the "
            f"replay window had filled (minute {(settled[0].second + WINDOW) / 60:.1f} to the end): consumer "
            f"{growth.get('consumer', 0):+.1f} MB, provider {growth.get('provider', 0):+.1f} MB; errors "
            f"{sum(w.load.bad for w in windows)} of {sum(w.load.requests for w in windows):,}"
        )


if __name__ == "__main__":
    main()
