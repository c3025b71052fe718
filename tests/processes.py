"""Processes the tests' servers started, read from /proc: whether one still runs, and the
last resort of a teardown (SIGKILL what outlived its test).

Zombies count as dead: their parent (the test process, which ran the server) has not
reaped them yet.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def live_processes(matches: Callable[[list[str]], bool]) -> dict[int, list[str]]:
    """Every live process but this one whose command line ``matches``, by pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if matches(argv) and alive(int(entry.name)):
            found[int(entry.name)] = argv
    return found


def kill_all(processes: dict[int, list[str]]) -> dict[int, list[str]]:
    for pid in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return processes
