"""Process measurements for the load tools: RSS and CPU seconds of a process and its children
(from /proc), CPU by program, and a background RSS sampler."""

from __future__ import annotations

import os
import threading
import time


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MiB (psutil if installed, else /proc)."""
    try:
        import psutil  # type: ignore
        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        pass
    except Exception:
        return 0.0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children (from /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_by_program() -> dict[str, float]:
    """CPU seconds used so far by every live process, summed by program name (/proc/<pid>/comm):
    to see where the machine's cores went during a run (browsers, Playwright's driver, server)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as fh:
                name = fh.read().strip()
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def programs_of_tree(pid: int) -> list[str]:
    """Program names (/proc/<pid>/comm) of the live descendants of ``pid``: what a run started
    itself, unlike :func:`cpu_by_program`, which sees every process on the machine."""
    names = set()
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/comm") as fh:
                names.add(fh.read().strip())
        except OSError:
            continue
    return sorted(names)


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    kids = [int(k) for k in fh.read().split()]
                out += kids
                todo += kids
        except OSError:
            continue
    return out


def pin_tree(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` and of its descendants onto ``cpus`` (threads and processes they
    start later inherit it). Processes that end meanwhile are skipped."""
    for p in [pid, *descendants(pid)]:
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                os.sched_setaffinity(int(task), cpus)
            except OSError:
                pass


class RssSampler(threading.Thread):
    """Every ``every`` s: the process's RSS and its tree's (``samples``), and its CPU seconds by
    unix time (``cpu``), so the CPU of any window of the run can be read back (``cpu_between``)."""

    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float, float]] = []  # (t, server MiB, tree MiB)
        self.cpu: list[tuple[float, float]] = []              # (unix time, CPU seconds)
        self._halt = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self._halt.is_set():
            main = rss_mb(self.pid)
            tree = main + sum(rss_mb(k) for k in descendants(self.pid))
            self.samples.append((time.monotonic() - t0, main, tree))
            self.cpu.append((time.time(), cpu_seconds(self.pid)))
            self._halt.wait(self.every)

    def cpu_between(self, start: float, end: float) -> float | None:
        """CPU seconds the process used between two unix times (the samples nearest inside them);
        None without two samples in the window."""
        inside = [c for t, c in self.cpu if start <= t <= end]
        return inside[-1] - inside[0] if len(inside) >= 2 else None

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def peak(self) -> tuple[float, float]:
        return (max((s[1] for s in self.samples), default=0.0),
                max((s[2] for s in self.samples), default=0.0))

    def last(self) -> float:
        return self.samples[-1][1] if self.samples else 0.0



def chromium_pids() -> set[int]:
    """Live processes whose program is Chromium (any browser on this machine)."""
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as fh:
                    if fh.read().strip().startswith("chrom"):
                        out.add(int(pid))
            except OSError:
                pass
    return out


def parent(pid: int) -> int:
    """The parent's pid (-1 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1
