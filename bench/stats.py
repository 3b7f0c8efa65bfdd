"""The small statistics every benchmark prints: medians and percentiles of repeated measurements."""

from __future__ import annotations

import os
import resource
import statistics
from collections.abc import Sequence
from pathlib import Path

_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def cpu_ms(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far, from /proc/<pid>/stat.

    What a server spends per request is the figure that transfers to a machine of its own, where
    single-box throughput (everything sharing the same cores) does not.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces; fields start at state
    return (int(fields[11]) + int(fields[12])) * _TICK_MS  # utime, stime: fields 14 and 15 of proc(5)


def machine_busy_ms() -> float:
    """CPU time all cores have spent busy since boot (everything but idle and I/O wait), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) * _TICK_MS


def own_ms() -> float:
    """CPU time of this process and of its children that have ended (the load generator's runs)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime) * 1000
