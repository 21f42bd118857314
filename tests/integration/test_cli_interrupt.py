"""An interrupted ``--wait`` names what it started: the work goes on, the id was never shown.

``task submit --wait`` and ``workflow generate --wait`` print the id only once
the wait ends; Ctrl-C (or SIGTERM) during the wait ended the command with
nothing printed while the task or workflow went on, leaving the user no id to
follow or cancel it with.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest
from sqlalchemy import Engine, text

from tests.integration.test_cli import TOOLBOX
from workers import client

SUBMIT = ("task", "submit", "echo", "--input", '{"phase_seconds": 5}', "--wait")
GENERATE = (
    "workflow", "generate", "--subject", "science", "--grade", "6", "--topic", "volcanoes",
    "--wait",
)  # fmt: skip


def started_id(engine: Engine, process: subprocess.Popen[str]) -> uuid.UUID:
    """The id of the first task the command saved, once its message is sent (it then waits)."""
    for _ in range(600):  # the command's start-up, on shared cores; no assertion on time
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT id FROM agent_tasks WHERE dispatched_at IS NOT NULL")
            ).scalar()
        if found is not None:
            time.sleep(1)  # from sending the message into the wait
            return uuid.UUID(str(found))
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    raise AssertionError("the command saved no task")


@pytest.mark.parametrize(
    ("command", "noun", "sent", "status"),
    [
        pytest.param(SUBMIT, "task", signal.SIGINT, 130, id="task-ctrl-c"),
        pytest.param((*SUBMIT, "--json"), "task", signal.SIGTERM, 143, id="task-json-sigterm"),
        pytest.param(
            (*GENERATE, "--json"), "workflow", signal.SIGINT, 130, id="workflow-json-ctrl-c"
        ),
        pytest.param(GENERATE, "workflow", signal.SIGTERM, 143, id="workflow-sigterm"),
    ],
)
def test_an_interrupted_wait_names_what_goes_on(
    engine: Engine,
    toolbox_env: dict[str, str],
    command: tuple[str, ...],
    noun: str,
    sent: signal.Signals,
    status: int,
) -> None:
    process = subprocess.Popen(
        [TOOLBOX, *command], env={**os.environ, **toolbox_env, "COLUMNS": "80"},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        found = started_id(engine, process)
        process.send_signal(sent)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == status, stderr
    assert stdout == ""  # nothing half-printed for a script reading --json
    (line,) = [line for line in stderr.splitlines() if "stopped waiting" in line]
    assert line == (
        f"warning: stopped waiting; {noun} {found} goes on running (follow it: toolbox {noun}"
        f" show {found}; stop it: toolbox {noun} cancel {found})"
    )
    assert stderr.splitlines()[-1] == line  # the last word, and no traceback
    assert client.get_task(found, states=False).status in {"pending", "queued"}  # not cancelled


@pytest.mark.parametrize("after", [0.05, 0.2])
def test_a_ctrl_c_while_the_command_line_loads_ends_it_without_a_traceback(after: float) -> None:
    """Loading the commands takes about a second; a Ctrl-C in it printed a traceback.

    A signal that lands while the interpreter itself starts (``site``, before any
    code of ours runs: on a loaded machine, 50 ms may not reach past it) ends in
    Python's own fatal error; that try is made again a little later.
    """
    for attempt in range(6):
        loading = subprocess.Popen(
            [TOOLBOX, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(after + attempt * 0.05)
        loading.send_signal(signal.SIGINT)
        out, err = loading.communicate(timeout=60)
        if "init_import_site" not in err:
            break
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    # 130 as the shell reports a Ctrl-C; a signal that beats Python's own handler kills it (-2)
    assert loading.returncode in (130, -signal.SIGINT), (loading.returncode, out[:200])
