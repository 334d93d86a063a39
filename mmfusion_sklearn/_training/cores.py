"""How many CPU cores a fit can use now: the process's affinity, its cgroup CPU quota,
and the cores that other processes keep busy (Linux).

torch's default thread count is the machine's core count. Its OpenMP threads meet at a
barrier after every parallel operation; when another process holds one of those cores,
every barrier waits for a time slice, and a fit of a small network ran 2.5-3.4x slower
with two threads than with one on two busy cores (``benchmarks/threads_loaded.py``). So
the default (``n_threads=None``) caps torch's threads at the cores that are free when a
fit or a prediction starts. Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable

#: How long the busy cores are measured (seconds); /proc/stat counts in 10 ms ticks.
WINDOW_S = 0.1
#: A measurement is reused for this long (seconds): a cross-validation's fits and a
#: service's predictions do not each wait ``WINDOW_S``.
REUSE_S = 10.0

_lock = threading.Lock()
_last: tuple[float, int | None] | None = None


def _read_proc_stat(path: str = "/proc/stat") -> dict[int, tuple[int, int]]:
    """(busy, total) ticks per CPU number from /proc/stat. Busy counts steal time:
    a core the hypervisor gives to another guest is not ours."""
    ticks: dict[int, tuple[int, int]] = {}
    with open(path, encoding="ascii") as handle:
        for line in handle:
            name, *fields = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            values = [int(value) for value in fields[:8]]
            values += [0] * (8 - len(values))
            idle = values[3] + values[4]  # idle + iowait
            total = sum(values)
            ticks[int(name[3:])] = (total - idle, total)
    return ticks


def cgroup_cpu_quota(path: str = "/sys/fs/cgroup/cpu.max") -> float | None:
    """The CPU quota of the process's cgroup (v2) in cores, None without one."""
    try:
        with open(path, encoding="ascii") as handle:
            quota, period = handle.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return None


def free_cores(window: float = WINDOW_S, *,
               read_ticks: Callable[[], dict[int, tuple[int, int]]] = _read_proc_stat,
               own_cpu_seconds: Callable[[], float] | None = None,
               sleep: Callable[[float], None] = time.sleep,
               affinity: set[int] | None = None,
               quota: float | None = None,
               clock_ticks: int | None = None) -> int | None:
    """The cores this process may use that other processes are not using now.

    Measured over ``window`` seconds from /proc/stat, on the CPUs of the process's
    affinity, minus the process's own CPU time, and capped by the cgroup's CPU quota.
    None where /proc/stat cannot be read (not Linux): the caller keeps its setting.
    The keyword arguments replace the machine's readings (tests).
    """
    if own_cpu_seconds is None:
        def own_cpu_seconds() -> float:
            times = os.times()
            return times.user + times.system
    if affinity is None:
        affinity = _affinity()
    if quota is None:
        quota = cgroup_cpu_quota()
    if clock_ticks is None:
        try:
            clock_ticks = os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):
            return None
    try:
        before, own_before = read_ticks(), own_cpu_seconds()
        start = time.monotonic()
        sleep(window)
        after, own_after = read_ticks(), own_cpu_seconds()
        elapsed = max(time.monotonic() - start, window)
    except (OSError, ValueError):
        return None
    cpus = [cpu for cpu in after if cpu in before and (affinity is None or cpu in affinity)]
    if not cpus:
        return None
    busy = sum(after[cpu][0] - before[cpu][0] for cpu in cpus) / clock_ticks
    busy_by_others = max(0.0, busy - (own_after - own_before))
    free = len(cpus) - busy_by_others / elapsed
    if quota is not None:
        free = min(free, quota)
    # a core half used by others is still worth a thread: round to the nearest core
    return max(1, int(math.floor(free + 0.5)))


def default_thread_count(current: int) -> int:
    """torch's thread count for a fit or a prediction under ``n_threads=None``: the
    current setting, lowered to the free cores (measured at most every ``REUSE_S``)."""
    global _last
    if current <= 1:  # nothing to lower: no 0.1 s measurement
        return current
    with _lock:
        now = time.monotonic()
        if _last is None or now - _last[0] > REUSE_S:
            _last = (time.monotonic(), free_cores())
        free = _last[1]
    return current if free is None else max(1, min(current, free))
