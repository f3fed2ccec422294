"""The clock a ``--time-budget`` counts: wall seconds (default) or CPU seconds.

``run.budget_clock: cpu`` counts the CPU time (user + system) of the training process and of
its data-loader workers instead of wall time, so a budget buys the same compute on a machine
shared with other work: two methods compared on a busy machine get the same number of CPU
seconds each, where a wall-clock budget would give the one that ran during a busy spell fewer
steps. On one core per run (``OMP_NUM_THREADS=1``) a CPU minute is a wall minute of an idle
machine. Children are read from ``/proc`` (Linux); elsewhere only the process itself counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

BUDGET_CLOCKS = ("wall", "cpu")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _child_pids(pid: int) -> list[int]:
    """Live child processes of ``pid`` (all its threads' children), [] where /proc lacks them."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def _process_cpu(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds (None once it has gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS  # fields 14 and 15 of stat(5)


class CpuClock:
    """CPU seconds of this process plus its children, never going back.

    A child that exits (a data-loader worker at the end of an epoch) keeps the CPU time last
    seen for it, so the clock stays monotonic.
    """

    def __init__(self) -> None:
        self._children: dict[int, float] = {}

    def __call__(self) -> float:
        for pid in _child_pids(os.getpid()):
            seconds = _process_cpu(pid)
            if seconds is not None:
                self._children[pid] = max(seconds, self._children.get(pid, 0.0))
        return time.process_time() + sum(self._children.values())


def budget_clock(kind: str, wall: Callable[[], float]) -> Callable[[], float]:
    """The clock for ``run.budget_clock`` (``wall`` is the trainer's wall clock)."""
    return wall if kind == "wall" else CpuClock()
