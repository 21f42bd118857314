"""The processes of one worker stack; the ``Procfile`` lists the same lines.

``toolbox up`` runs them (``workers.stack``: a stop lets running tasks finish);
``honcho start`` runs the Procfile (its stop kills them).  Exactly one beat
per stack: beat's own duplicate protection (a unique row per fire in
``periodic_job_runs``) makes a second one harmless, not useful.  Started with
``process_env()``, they stop when the process that started them dies, even by
SIGKILL (``workers.lifelines``).  Paths are quoted: ``TOOLBOX_DATA_DIR`` may
hold spaces.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from models.errors import ConfigurationError
from workers.celeryconfig import HARD_LIMIT_GRACE_SECONDS, MAX_TIMEOUT_SECONDS
from workers.lifelines import die_with_parent, stop_with_supervisor, supervisor_env

CELERY = "celery -A workers.app"
#: Gossip (workers following each other's events) serves nothing here: a cancel is a
#: row, not a revoke.  Left on, every Redis restart logged ``Error on restarting
#: Gossip`` with a traceback of about 150 lines from each worker.
WORKER_OPTIONS = "--prefetch-multiplier 1 --without-gossip -l INFO"

PROCESSES: dict[str, str] = {
    "agents": (
        f"{CELERY} worker -Q agents -n agents@%h -c ${{TOOLBOX_CONCURRENCY:-2}} {WORKER_OPTIONS}"
    ),
    "lms": f"{CELERY} worker -Q lms -n lms@%h -c 2 {WORKER_OPTIONS}",
    "passback": f"{CELERY} worker -Q passback -n passback@%h -c 1 {WORKER_OPTIONS}",
    "maintenance": f"{CELERY} worker -Q maintenance -n maintenance@%h -c 1 {WORKER_OPTIONS}",
    "beat": f'{CELERY} beat -l INFO -s "${{TOOLBOX_DATA_DIR:-.toolbox}}/celerybeat-schedule"',
    "flower": "toolbox flower",
}
WORKERS = ("agents", "lms", "passback", "maintenance")
COLD_SIGNALS = dict.fromkeys(WORKERS, signal.SIGQUIT)
"""Celery's cold shutdown: a worker cancels its running tasks, which go back to the queue."""
STOP_GRACE_SECONDS = MAX_TIMEOUT_SECONDS + HARD_LIMIT_GRACE_SECONDS + 30
"""How long a stop of ``toolbox up`` waits for running tasks: the longest hard time limit
(an agent's or an LMS sync's) and time for the worker to leave; a second Ctrl-C is quicker."""


def choose(spec: str) -> list[str]:
    """The processes a comma-separated list names, in its order.

    ``ConfigurationError`` for a list ``toolbox up`` cannot run: empty, with an
    empty name (``agents,``: a stray comma, a name left out?), an unknown name,
    or a name twice (it would start a second process by that name).
    Its message is about the list; ``toolbox up`` names ``--processes`` before it.
    """
    items = [item.strip() for item in spec.split(",")]
    names = [item for item in items if item]
    known = ", ".join(PROCESSES)
    if not names:
        raise ConfigurationError(f"names no process; choose from {known}")
    if len(names) < len(items):
        raise ConfigurationError(
            f"empty name {_where_empty(items)} in {spec.strip()!r}; remove the extra comma"
        )
    unknown = [name for name in names if name not in PROCESSES]
    if unknown:
        raise ConfigurationError(f"unknown process {unknown[0]!r}; known: {known}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigurationError(
            f"names {', '.join(repeated)} more than once; each runs once per "
            "toolbox up (more agent processes: TOOLBOX_CONCURRENCY)"
        )
    return names


def _where_empty(items: list[str]) -> str:
    """Where the first empty item of a list with names in it is: ``between 'agents' and 'lms'``."""
    empty = items.index("")
    before = [item for item in items[:empty] if item]
    after = [item for item in items[empty:] if item]
    if before and after:
        return f"between {before[-1]!r} and {after[0]!r}"
    return f"after {before[-1]!r}" if before else f"before {after[0]!r}"


def process_env() -> dict[str, str]:
    """The environment for child processes, with this interpreter's scripts on PATH.

    ``.venv/bin/toolbox up`` must find ``.venv/bin/celery`` even when the
    virtualenv is not activated.  It names this process as their supervisor:
    workers, beat and ``toolbox flower`` stop once it is gone, however it ended
    (``workers.lifelines`` says why not by the kernel's parent-death signal).
    """
    env = dict(os.environ)
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])
    env.update(supervisor_env())
    return env


FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_KILL_SECONDS = 10.0
TICK_SECONDS = 0.2
"""How long ``run_in_foreground`` waits for its child to stop after passing on a signal."""


def run_in_foreground(
    argv: list[str],
    env: dict[str, str],
    *,
    name: str | None = None,
    kill_after: float = STOP_KILL_SECONDS,
) -> int:
    """Run ``argv`` to its end, passing on stop signals; return its exit status.

    A child still running ``kill_after`` seconds after the first signal gets
    SIGKILL: Flower, asked to stop while Redis is away, exits only once its
    event thread wakes from a retry wait of up to 1,024 s, and ``toolbox up``
    waited for it up to its whole stop timeout.  It runs no tasks to finish.

    Unlike exec, this process lives on and runs its exit cleanup (leaving the
    embedded servers).  The child gets a process group of its own, so Ctrl-C in
    a terminal or ``honcho start``'s group-wide SIGTERM reaches it once, through
    here, not twice (Flower prints a traceback on a second SIGINT).  So a SIGKILL of
    this process alone reaches no child: on Linux the kernel then sends the
    child SIGTERM (``die_with_parent``); elsewhere the child keeps running.
    Under ``toolbox up`` this process also stops when ``toolbox up`` is gone.
    Call it from the main thread.
    """
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []
    asked: list[float] = []  # when the first stop signal came

    def forward(signum: int, _frame: FrameType | None) -> None:
        asked.append(asked[0] if asked else time.monotonic())
        if child is None:
            pending.append(signum)
        else:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        child = subprocess.Popen(argv, env=env, process_group=0, preexec_fn=die_with_parent())
        for signum in pending:
            child.send_signal(signum)
        stop_with_supervisor()  # after the fork: no thread while preexec_fn runs
        status = _wait_or_kill(child, name or Path(argv[0]).name, asked, kill_after)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return exit_status(status)


def _wait_or_kill(
    child: subprocess.Popen[bytes], name: str, asked: list[float], kill_after: float
) -> int:
    """The child's return code; SIGKILL once it outlives ``kill_after`` after a stop signal."""
    while True:
        try:
            return child.wait(timeout=TICK_SECONDS)
        except subprocess.TimeoutExpired:
            if asked and time.monotonic() - asked[0] >= kill_after:
                print(f"{name} did not stop within {kill_after:g}s; killing it", file=sys.stderr)
                child.kill()
                return child.wait()


def how_it_ended(returncode: int) -> str:
    """A ``Popen.returncode`` in words: ``exited with status 1``, ``was ended by signal SIGHUP``."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = str(-returncode)
    return f"was ended by signal {name}"


def exit_status(returncode: int) -> int:
    """A shell's exit status: 128 + N for a process ended by signal N."""
    return 128 - returncode if returncode < 0 else returncode
