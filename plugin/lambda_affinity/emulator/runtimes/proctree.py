"""A process's children and descendants, read from its own
/proc/<pid>/task/<tid>/children files (one per thread: a child belongs to the
thread that forked it) instead of a scan of all of /proc, whose cost grows
with every process on the machine.

Shared by the emulator (the memory of an environment's tree) and the
fork-server (what an ended environment left to it); zygote.py loads this
file by path, so it uses the standard library only. Linux; on a kernel
without these files (CONFIG_PROC_CHILDREN off) it falls back to the scan.
"""

import os

SUPPORTED = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def children(pid: int) -> list:
    """The pids of `pid`'s children (none when it is gone or /proc is missing)."""
    if not SUPPORTED:
        return _scan_children(pid)
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                out.extend(int(x) for x in fh.read().split())
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return out


def descendants(pid: int) -> list:
    """The pids of every process below `pid`, children first."""
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def _scan_children(pid: int) -> list:
    out: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                data = fh.read()
            if int(data[data.rindex(b")") + 2 :].split()[1]) == pid:
                out.append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return out
