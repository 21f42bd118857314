"""Beat's scheduler: Celery's own, with the schedule file's folder created first.

The Procfile (and ``honcho start``) runs ``celery beat -s
"${TOOLBOX_DATA_DIR:-.toolbox}/celerybeat-schedule"``; given server URLs, no
command before it creates that folder (``toolbox migrate`` does not), so on a
fresh machine beat died with ``FileNotFoundError: ... .toolbox/celerybeat-
schedule.dat`` in a traceback, and honcho stopped the stack with it.  The
folder is created as every command creates the data folder: an unusable one
is one line naming the setting.
"""

from __future__ import annotations

from pathlib import Path

from celery.beat import PersistentScheduler

from workers.settings import ensure_data_dir


class Scheduler(PersistentScheduler):  # type: ignore[misc]  # celery ships no types
    """``PersistentScheduler`` whose schedule file's folder exists before it is opened."""

    def setup_schedule(self) -> None:
        ensure_data_dir(Path(self.schedule_filename).parent)
        super().setup_schedule()
