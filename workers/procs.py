"""The processes of one worker stack; the ``Procfile`` lists the same lines.

``toolbox up`` runs them with honcho; ``honcho start`` runs the Procfile.
Exactly one beat per stack: beat's own duplicate protection (a unique row
per fire in ``periodic_job_runs``) makes a second one harmless, not useful.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CELERY = "celery -A workers.app"

PROCESSES: dict[str, str] = {
    "agents": (
        f"{CELERY} worker -Q agents -n agents@%h -c ${{TOOLBOX_CONCURRENCY:-2}} "
        "--prefetch-multiplier 1 -l INFO"
    ),
    "lms": f"{CELERY} worker -Q lms -n lms@%h -c 2 --prefetch-multiplier 1 -l INFO",
    "maintenance": (
        f"{CELERY} worker -Q maintenance -n maintenance@%h -c 1 --prefetch-multiplier 1 -l INFO"
    ),
    "beat": f"{CELERY} beat -l INFO -s ${{TOOLBOX_DATA_DIR:-.toolbox}}/celerybeat-schedule",
    "flower": "toolbox flower",
}


def process_env() -> dict[str, str]:
    """The environment for child processes, with this interpreter's scripts on PATH.

    ``.venv/bin/toolbox up`` must find ``.venv/bin/celery`` even when the
    virtualenv is not activated.
    """
    env = dict(os.environ)
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])
    return env
