"""CPU time of processes and their descendants, read from ``/proc`` (Linux): where a benchmark's time goes."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

__all__ = ["find_pid", "machine_busy_seconds", "process_tree_cpu_seconds"]

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name sits in parentheses and may hold spaces; the fields after it are fixed.
    return text[text.rindex(")") + 2:].split()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            tree[int(fields[1])].append(int(entry.name))
    return tree


def process_tree_cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of ``pid``, its live descendants and its reaped children.

    0.0 when the process is gone or ``/proc`` is not there.
    """
    fields = _stat(pid)
    if fields is None:
        return 0.0
    tree = _children()
    # After the name: state ppid … utime(11) stime(12) cutime(13) cstime(14), 0-based from state.
    total = sum(int(v) for v in fields[11:15])
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop()
        if (child_fields := _stat(child)) is not None:
            total += int(child_fields[11]) + int(child_fields[12])
            stack.extend(tree.get(child, []))
    return total / _TICKS


def machine_busy_seconds() -> float:
    """Return the CPU seconds all cores have spent busy since boot (0.0 without ``/proc/stat``).

    What the processes' own counters miss shows here: interrupts, and kernel work no process is
    charged for.
    """
    try:
        fields = (_PROC / "stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    # cpu user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
    ticks = [int(v) for v in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICKS


def find_pid(cmdline_part: str) -> int | None:
    """Return the pid of a process whose command line contains ``cmdline_part`` (None if none does)."""
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmdline_part in cmdline and int(entry.name) != os.getpid():
            return int(entry.name)
    return None
