"""Run a stack's processes in the foreground; stop them without cutting running tasks short.

The output is honcho's (``time name | line``); the stop is not.  honcho sends
SIGTERM to each process's whole process group, which reaches a Celery worker's
pool children directly: their tasks die (``WorkerLostError``) and run again
later, each stop spending one of ``TOOLBOX_MAX_DELIVERIES``; five seconds on it
sends SIGKILL.  Here a stop goes in steps.  The first SIGINT or SIGTERM, a
process ending by itself, or ``end`` (an embedded server that cannot be started
again), starts it; each further SIGINT or SIGTERM, or the end of a step's
time, takes the next step:

1. warm: SIGTERM to each main process only.  A worker stops taking tasks and
   finishes the ones it runs (Celery's warm shutdown; no task runs past its
   hard time limit); beat and Flower stop at once.  Up to ``grace`` seconds;
   a process without a cold signal (it runs no tasks: beat, Flower) still
   running ``taskless_wait`` seconds in gets SIGKILL, as a stuck one held the
   whole stop (Flower, while Redis is away, waits out a retry of up to 1,024 s).
2. cold: the process's cold signal (``cold_signals``: SIGQUIT for a worker,
   Celery's cold shutdown, which puts its running tasks back on the queue),
   SIGKILL to the group of a process without one.  Up to ``cold_wait`` seconds.
3. kill: SIGKILL to every group left, pool children included.

Each process runs in a session of its own, its shell replaced by the command
(``exec``): its pid is its main process, and a Ctrl-C typed in the terminal
(SIGINT to the terminal's foreground process group) reaches this process alone.
"""

from __future__ import annotations

import datetime
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import TextIO

from honcho.colour import get_colours
from honcho.printer import Message, Printer

from workers.procs import exit_status

COLD_SECONDS = 10.0
"""How long the cold step waits before SIGKILL, unless told otherwise."""
TASKLESS_SECONDS = 15.0
"""How long the warm step waits for a process that runs no tasks, unless told otherwise
(longer than ``toolbox flower`` waits for Flower itself, ``procs.STOP_KILL_SECONDS``)."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
TICK_SECONDS = 0.1
DRAIN_SECONDS = 2.0
"""How long the output of a process that ended may still arrive (a child holding its pipe)."""
SYSTEM = "system"
STEPS = ("running", "warm", "cold", "kill")


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    colour: str
    reader: threading.Thread | None = None


class Stack:
    """The processes of ``commands`` (name to shell command), run until they all end.

    ``run`` returns the exit status: 0 after a stop asked for by a signal that
    needed no more than the warm step, 1 after one that went further (tasks
    were cut short and will run again), otherwise the status of the process
    that ended first (128 + N for signal N; 1 if it exited with 0), which
    ``on_end`` hears of as it starts the stop (its name and ``Popen.returncode``);
    1 after a stop asked for by ``end``.  ``on_stop`` hears that the stop
    starts, whatever started it, before any process is signalled.
    """

    def __init__(
        self,
        commands: Mapping[str, str],
        env: Mapping[str, str],
        *,
        grace: float,
        cold_signals: Mapping[str, signal.Signals],
        cold_wait: float = COLD_SECONDS,
        taskless_wait: float = TASKLESS_SECONDS,
        output: TextIO | None = None,
        on_end: Callable[[str, int], None] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self._commands = dict(commands)
        self._on_end = on_end
        self._on_stop = on_stop
        self._env = dict(env)
        self._grace = grace
        self._cold = dict(cold_signals)
        self._cold_wait = cold_wait
        self._taskless_wait = taskless_wait
        self._taskless_deadline: float | None = None
        self._printer = Printer(output or sys.stdout)
        self._printer.width = max(len(name) for name in [SYSTEM, *commands])
        self._lines: queue.Queue[tuple[str, str, bytes]] = queue.Queue()
        self._processes: list[_Process] = []
        self._signals: list[int] = []
        self._ends: list[str] = []
        self._step = 0
        self._deadline: float | None = None
        self._status: int | None = None

    def run(self) -> int:
        """Start every process, print their output, stop them as described above.

        Call it from the main thread: it handles SIGINT and SIGTERM until it returns.
        """
        previous = {signum: signal.signal(signum, self._on_signal) for signum in STOP_SIGNALS}
        try:
            self._start()
            while any(process.popen.returncode is None for process in self._processes):
                self._print_lines(TICK_SECONDS)
                self._react()
            self._drain()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 1 if self._status is None else self._status

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals.append(signum)  # acted on in the loop, never inside the handler

    def end(self, reason: str) -> None:
        """Stop the stack as a process ending does, saying ``reason``; from any thread."""
        self._ends.append(reason)  # acted on in the loop, as a signal is

    def _start(self) -> None:
        colours = get_colours()
        for name, command in self._commands.items():
            popen = subprocess.Popen(
                f"exec {command}", shell=True, env=self._env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            process = _Process(name, popen, next(colours))
            process.reader = threading.Thread(
                target=self._read, args=(process,), name=f"toolbox-up-{name}", daemon=True
            )
            process.reader.start()
            self._processes.append(process)
            self._say(f"{name} started (pid={popen.pid})")

    def _read(self, process: _Process) -> None:
        assert process.popen.stdout is not None
        with process.popen.stdout as stream:
            for line in iter(stream.readline, b""):
                self._lines.put((process.name, process.colour, line))

    def _react(self) -> None:
        self._take_requests()
        for process in self._processes:
            if process.popen.returncode is not None:
                continue  # reported already
            returncode = process.popen.poll()
            if returncode is not None:
                status = exit_status(returncode)
                self._say(f"{process.name} stopped (rc={status})")
                if self._step == 0:
                    self._status = status or 1
                    if self._on_end is not None:
                        self._on_end(process.name, returncode)
                    self._next_step()
        if self._taskless_deadline is not None and time.monotonic() >= self._taskless_deadline:
            self._taskless_deadline = None
            for process in self._processes:
                if process.popen.returncode is None and process.name not in self._cold:
                    self._say(f"{process.name} runs no tasks and did not stop when asked")
                    self._signal(process, signal.SIGKILL)
        if self._deadline is not None and time.monotonic() >= self._deadline:
            left = ", ".join(p.name for p in self._processes if p.popen.returncode is None)
            self._say(f"{left} still running at the end of the {STEPS[self._step]} stop")
            self._next_step()

    def _take_requests(self) -> None:
        """Act on the signals received and the ``end`` calls made since the last time."""
        while self._signals:
            signum = self._signals.pop(0)
            self._say(f"{signal.Signals(signum).name} received")
            if self._step == 0:
                self._status = 0
            self._next_step()
        while self._ends:
            self._say(self._ends.pop(0))
            if self._step == 0:
                self._status = 1
                self._next_step()

    def _next_step(self) -> None:
        if self._step == len(STEPS) - 1:
            return
        self._step += 1
        if self._step > 1 and not self._status:
            self._status = 1  # tasks were cut short
        running = [p for p in self._processes if p.popen.returncode is None]
        self._taskless_deadline = None
        if STEPS[self._step] == "warm":
            if self._on_stop is not None:
                self._on_stop()
            self._deadline = time.monotonic() + self._grace
            self._taskless_deadline = time.monotonic() + self._taskless_wait
            self._say(
                f"stopping: running tasks finish first (up to {self._grace:g}s); "
                "Ctrl-C or SIGTERM again to stop them now (they run again later)"
            )
            for process in running:
                self._signal(process, signal.SIGTERM)
        elif STEPS[self._step] == "cold":
            self._deadline = time.monotonic() + self._cold_wait
            for process in running:
                self._signal(process, self._cold.get(process.name, signal.SIGKILL))
        else:
            self._deadline = None
            for process in running:
                self._signal(process, signal.SIGKILL)

    def _signal(self, process: _Process, signum: signal.Signals) -> None:
        """``signum`` to the main process; SIGKILL to its whole group.

        Only for a process not yet reaped (``returncode`` None): until then its
        pid, which is also its group's id, cannot name another process.
        """
        self._say(f"sending {signum.name} to {process.name} (pid {process.popen.pid})")
        try:
            if signum == signal.SIGKILL:
                os.killpg(process.popen.pid, signum)
            else:
                os.kill(process.popen.pid, signum)
        except ProcessLookupError:
            pass

    def _print_lines(self, timeout: float) -> None:
        try:
            name, colour, line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return
        self._write(name, colour, line)
        while True:
            try:
                name, colour, line = self._lines.get_nowait()
            except queue.Empty:
                return
            self._write(name, colour, line)

    def _drain(self) -> None:
        """Print what the processes wrote before they ended."""
        deadline = time.monotonic() + DRAIN_SECONDS
        for process in self._processes:
            assert process.reader is not None
            process.reader.join(max(0.0, deadline - time.monotonic()))
        self._print_lines(0)

    def _say(self, text: str) -> None:
        self._write(SYSTEM, None, text)

    def _write(self, name: str, colour: str | None, data: bytes | str) -> None:
        now = datetime.datetime.now()
        self._printer.write(Message(type="line", data=data, time=now, name=name, colour=colour))
