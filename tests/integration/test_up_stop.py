"""Stopping ``toolbox up``: running tasks finish first, a second signal stops them now."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis
from sqlalchemy import create_engine, pool, text

from tests.integration.embedded_support import TOOLBOX
from tests.integration.ops_support import start_process
from tests.workers import wait_for
from workers.celeryconfig import HARD_LIMIT_GRACE_SECONDS, MAX_TIMEOUT_SECONDS
from workers.jobs.queues import read_queues
from workers.procs import STOP_GRACE_SECONDS, how_it_ended
from workers.redis import client_url

SLOW_ECHO = '{"message": "slow", "phase_seconds": 2}'
"""Five phases of 2 s: running well past the 5 s after which honcho sent SIGKILL."""

Signaller = Callable[[subprocess.Popen[bytes]], None]


def ctrl_c(up: subprocess.Popen[bytes]) -> None:
    """What a Ctrl-C typed in the terminal sends: SIGINT to the whole foreground group."""
    os.killpg(up.pid, signal.SIGINT)


def sigterm(up: subprocess.Popen[bytes]) -> None:
    """What a service manager or ``kill`` sends: SIGTERM to ``toolbox up`` alone."""
    up.send_signal(signal.SIGTERM)


StartUp = Callable[..., subprocess.Popen[bytes]]
"""``start_up(env, *options)``."""


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[StartUp]:
    """``toolbox up --processes agents,beat [options]``; whatever is left at the end is killed."""
    started: list[subprocess.Popen[bytes]] = []
    stack: list[psutil.Process] = []

    def start(env: dict[str, str], *options: str) -> subprocess.Popen[bytes]:
        log = tmp_path / "up.log"
        up = start_process([TOOLBOX, "up", "--processes", "agents,beat", *options], env, log)
        started.append(up)
        wait_for(lambda: b" ready." in log.read_bytes() or up.poll() is not None, 90)
        assert up.poll() is None, log.read_text()[-3000:]
        stack.extend(psutil.Process(up.pid).children(recursive=True))
        return up

    yield start
    for process in [*(psutil.Process(up.pid) for up in started if up.poll() is None), *stack]:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    for up in started:
        up.wait(10)


def submit_slow_echo(env: dict[str, str], database_url: str) -> str:
    submitted = subprocess.run(
        [TOOLBOX, "task", "submit", "echo", "--input", SLOW_ECHO, "--json"], env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    task_id: str = json.loads(submitted.stdout)["id"]
    wait_for(lambda: task_row(database_url, task_id)[0] == "running", 60, 0.1)
    return task_id


def task_row(database_url: str, task_id: str) -> tuple[str, int]:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT status, delivery_count FROM agent_tasks WHERE id = :id"),
                {"id": task_id},
            ).one()
    finally:
        engine.dispose()
    return row.status, row.delivery_count


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.parametrize("stop", [ctrl_c, sigterm])
def test_a_stop_lets_the_running_task_finish(
    stop: Signaller,
    start_up: StartUp,
    toolbox_env: dict[str, str],
    database_url: str,
    tmp_path: Path,
) -> None:
    env = {**os.environ, **toolbox_env}
    up = start_up(env)
    stack = psutil.Process(up.pid).children(recursive=True)
    assert all(os.getsid(p.pid) != os.getsid(up.pid) for p in stack), "a signal to the group"
    task_id = submit_slow_echo(env, database_url)
    stop(up)
    status = up.wait(90)
    log = (tmp_path / "up.log").read_text()
    assert task_row(database_url, task_id) == ("completed", 1), log[-3000:]
    assert "WorkerLostError" not in log and "SIGKILL" not in log, log[-3000:]
    assert status == 0


def second_ctrl_c(up: subprocess.Popen[bytes], log: Path) -> None:
    """Ctrl-C again, once the worker has begun its warm shutdown."""
    wait_for(lambda: b"Warm shutdown" in log.read_bytes(), 30)
    ctrl_c(up)


def stop_timeout_runs_out(up: subprocess.Popen[bytes], log: Path) -> None:
    """No second signal: ``--stop-timeout 1`` ends the warm stop (the task runs 10 s)."""
    wait_for(lambda: b"still running at the end of the warm stop" in log.read_bytes(), 30)


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "end_warm_stop"),
    [((), second_ctrl_c), (("--stop-timeout", "1"), stop_timeout_runs_out)],
    ids=["second-ctrl-c", "stop-timeout"],
)
def test_the_cold_stop_puts_the_running_task_back(
    options: tuple[str, ...],
    end_warm_stop: Callable[[subprocess.Popen[bytes], Path], None],
    start_up: StartUp,
    toolbox_env: dict[str, str],
    database_url: str,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """A second Ctrl-C, or the end of the warm stop's time, stops the running task now."""
    env = {**os.environ, **toolbox_env}
    up = start_up(env, *options)
    task_id = submit_slow_echo(env, database_url)
    ctrl_c(up)
    end_warm_stop(up, tmp_path / "up.log")
    status = up.wait(30)
    assert task_row(database_url, task_id) == ("running", 1)  # the next delivery takes it up
    broker = redis.Redis.from_url(client_url(redis_url))
    snapshot = read_queues(broker, ("agents",))
    broker.close()
    assert (snapshot.total, snapshot.unacked) == (1, 0), "the message is back on its queue"
    assert status == 1


@pytest.mark.worker
@pytest.mark.slow
def test_a_process_that_ends_is_named_on_stderr_and_the_stack_stops(
    toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    """Killing beat stops ``toolbox up`` with one ``error:`` line saying which and how."""
    output, errors = tmp_path / "up.log", tmp_path / "up.err"
    with output.open("wb") as stdout, errors.open("wb") as stderr:
        up = subprocess.Popen(
            [TOOLBOX, "up", "--processes", "agents,beat"], env={**os.environ, **toolbox_env},
            stdout=stdout, stderr=stderr, start_new_session=True,
        )  # fmt: skip
    stack: list[psutil.Process] = []
    try:
        wait_for(lambda: b" ready." in output.read_bytes() or up.poll() is not None, 90)
        assert up.poll() is None, output.read_text()[-3000:] + errors.read_text()
        stack = psutil.Process(up.pid).children(recursive=True)
        (beat,) = [p for p in psutil.Process(up.pid).children() if "beat" in p.cmdline()]
        beat.kill()
        status = up.wait(60)
    finally:
        for process in [psutil.Process(up.pid), *stack] if up.poll() is None else stack:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        up.wait(10)
    assert status == 128 + signal.SIGKILL, output.read_text()[-3000:]
    assert errors.read_text().splitlines() == [
        "error: toolbox up: the beat process was ended by signal SIGKILL; stopping the stack"
    ]
    assert "beat stopped (rc=137)" in output.read_text()


@pytest.mark.parametrize(
    ("returncode", "said"),
    [(0, "exited with status 0"), (3, "exited with status 3"),
     (-signal.SIGTERM, "was ended by signal SIGTERM"), (-200, "was ended by signal 200")],
)  # fmt: skip
def test_how_a_process_ended_in_words(returncode: int, said: str) -> None:
    assert how_it_ended(returncode) == said


def test_the_grace_outlasts_every_hard_time_limit(toolbox_env: dict[str, str]) -> None:
    from workers.app import app  # configured on the test servers (toolbox_env), none embedded

    app.loader.import_default_modules()
    ours = [task for name, task in app.tasks.items() if name.startswith("toolbox.")]
    limits = [task.time_limit or 0 for task in ours]
    agent_limit = MAX_TIMEOUT_SECONDS + HARD_LIMIT_GRACE_SECONDS  # set per message, not per task
    assert max([*limits, agent_limit]) < STOP_GRACE_SECONDS


# The steps themselves, on stand-in processes -------------------------------------------

RUN_STACK = """
import json, os, signal, sys
from workers.stack import Stack
commands, grace, cold_wait = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
cold = {name: signal.SIGQUIT for name in commands}
sys.exit(Stack(commands, os.environ, grace=grace, cold_signals=cold, cold_wait=cold_wait).run())
"""


def stand_in(ignores: str = "", exit_on: str = "", status: int = 0) -> str:
    """A process printing each of SIGTERM and SIGQUIT it gets, then ignoring it or exiting.

    ``exit_on`` names the signal it exits on; with ``status`` but no signal it exits at once.
    """
    code = (
        "import signal, sys, time\n"
        "def got(signum, frame):\n"
        "    name = signal.Signals(signum).name\n"
        "    print('got', name, flush=True)\n"
        f"    if name == {exit_on!r}: sys.exit(0)\n"
        "for name in ('SIGTERM', 'SIGQUIT'):\n"
        f"    if name in {ignores!r} or name == {exit_on!r}:\n"
        "        signal.signal(getattr(signal, name), got)\n"
        "print('ready', flush=True)\n"
        f"if {status}: sys.exit({status})\n"
        "time.sleep(60)\n"
    )
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def run_stack(
    commands: dict[str, str], tmp_path: Path, *, grace: float, cold_wait: float = 30
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", RUN_STACK, json.dumps(commands), str(grace), str(cold_wait)]
    stack = start_process(argv, dict(os.environ), tmp_path / "stack.log")
    wait_for(lambda: log(tmp_path).count("| ready") == len(commands), 30)
    return stack


def log(tmp_path: Path) -> str:
    return (tmp_path / "stack.log").read_text()


def test_the_warm_stop_ends_after_its_grace_then_the_cold_one_in_sigkill(tmp_path: Path) -> None:
    stack = run_stack({"stubborn": stand_in(ignores="SIGTERM SIGQUIT")}, tmp_path, grace=1,
                      cold_wait=1)  # fmt: skip
    started = time.monotonic()
    stack.send_signal(signal.SIGTERM)
    assert stack.wait(20) == 1, log(tmp_path)
    elapsed = time.monotonic() - started
    lines = log(tmp_path)
    order = ["got SIGTERM", "still running at the end of the warm stop", "got SIGQUIT",
             "still running at the end of the cold stop", "sending SIGKILL to stubborn",
             "stubborn stopped (rc=137)"]  # fmt: skip
    positions = [lines.find(line) for line in order]
    assert -1 not in positions and positions == sorted(positions), lines
    assert 2 <= elapsed < 10, elapsed


def test_a_second_signal_takes_the_cold_step_at_once(tmp_path: Path) -> None:
    stack = run_stack(
        {"worker": stand_in(ignores="SIGTERM", exit_on="SIGQUIT"), "beat": stand_in()},
        tmp_path, grace=600,
    )  # fmt: skip
    stack.send_signal(signal.SIGINT)
    wait_for(lambda: "got SIGTERM" in log(tmp_path) and "beat stopped" in log(tmp_path), 10)
    assert stack.poll() is None, "the warm stop waits for the worker"
    stack.send_signal(signal.SIGTERM)
    assert stack.wait(10) == 1, log(tmp_path)
    assert "got SIGQUIT" in log(tmp_path) and "worker stopped (rc=0)" in log(tmp_path)


def test_a_process_that_ends_stops_the_others_with_its_status(tmp_path: Path) -> None:
    commands = {"quitter": stand_in(status=3), "worker": stand_in(exit_on="SIGTERM")}
    stack = start_process(
        [sys.executable, "-c", RUN_STACK, json.dumps(commands), "600", "30"], dict(os.environ),
        tmp_path / "stack.log",
    )  # fmt: skip
    assert stack.wait(30) == 3, log(tmp_path)
    assert "quitter stopped (rc=3)" in log(tmp_path) and "worker stopped" in log(tmp_path)


ENDED_STACK = """
import json, os, signal, sys, threading
from workers.stack import Stack
commands = json.loads(sys.argv[1])
stack = Stack(commands, os.environ, grace=600, cold_signals={"worker": signal.SIGQUIT},
              on_stop=lambda: print("on_stop", flush=True))
def end(signum, frame):  # from another thread, as the watch of the embedded servers does
    threading.Thread(target=stack.end, args=("embedded Redis stopped; not started again",)).start()
signal.signal(signal.SIGUSR1, end)
sys.exit(stack.run())
"""


def test_end_stops_the_stack_as_a_process_ending_does(tmp_path: Path) -> None:
    commands = {"worker": stand_in(exit_on="SIGTERM")}
    stack = start_process(
        [sys.executable, "-c", ENDED_STACK, json.dumps(commands)], dict(os.environ),
        tmp_path / "stack.log",
    )  # fmt: skip
    wait_for(lambda: "| ready" in log(tmp_path), 30)
    stack.send_signal(signal.SIGUSR1)
    assert stack.wait(30) == 1, log(tmp_path)
    lines = log(tmp_path)
    order = ["system | embedded Redis stopped; not started again", "on_stop",
             "sending SIGTERM to worker", "got SIGTERM", "worker stopped (rc=0)"]  # fmt: skip
    positions = [lines.find(line) for line in order]
    assert -1 not in positions and positions == sorted(positions), lines
    assert lines.count("on_stop") == 1


TASKLESS_STACK = """
import json, os, signal, sys
from workers.stack import Stack
commands = json.loads(sys.argv[1])
cold = {"worker": signal.SIGQUIT}
sys.exit(Stack(commands, os.environ, grace=600, cold_signals=cold, taskless_wait=1).run())
"""


def test_a_process_that_runs_no_tasks_is_killed_when_it_does_not_stop(tmp_path: Path) -> None:
    """Flower, asked to stop while Redis was away, waited out a retry of up to 1,024 s, and the
    stop of ``toolbox up`` waited for it up to its whole grace; the worker's tasks may."""
    commands = {"worker": stand_in(exit_on="SIGQUIT", ignores="SIGTERM"),
                "flower": stand_in(ignores="SIGTERM")}  # fmt: skip
    stack = start_process(
        [sys.executable, "-c", TASKLESS_STACK, json.dumps(commands)], dict(os.environ),
        tmp_path / "stack.log",
    )  # fmt: skip
    wait_for(lambda: log(tmp_path).count("| ready") == 2, 30)
    stack.send_signal(signal.SIGTERM)
    wait_for(lambda: "flower stopped (rc=137)" in log(tmp_path), 10)
    assert "flower runs no tasks and did not stop when asked" in log(tmp_path)
    assert stack.poll() is None, "the worker's running tasks still have their grace"
    stack.send_signal(signal.SIGTERM)
    assert stack.wait(10) == 1, log(tmp_path)


FOREGROUND = """
import sys
from workers.procs import run_in_foreground
sys.exit(run_in_foreground([sys.executable, "-c", sys.argv[1]], {}, name="Flower", kill_after=1))
"""


def test_toolbox_flower_kills_a_flower_that_does_not_stop(tmp_path: Path) -> None:
    stubborn = shlex.split(stand_in(ignores="SIGTERM"))[2]
    runner = start_process(
        [sys.executable, "-c", FOREGROUND, stubborn], dict(os.environ), tmp_path / "stack.log"
    )
    wait_for(lambda: "ready" in log(tmp_path), 30)
    started = time.monotonic()
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(10) == 128 + signal.SIGKILL, log(tmp_path)
    assert 1 <= time.monotonic() - started < 5
    assert "got SIGTERM" in log(tmp_path)
    assert "Flower did not stop within 1s; killing it" in log(tmp_path)
