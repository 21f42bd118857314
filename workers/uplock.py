"""One ``toolbox up`` per data folder: a second one would run every worker twice.

Its workers would join the first stack's under the same names (``agents@host``:
Celery's ``DuplicateNodenameWarning``, replies from three nodes where six run)
and a second beat would schedule every job again; only Flower's port stopped
it, and not with ``--processes agents``.  ``toolbox up`` holds an exclusive
``flock`` on ``<data folder>/up.lock`` while it runs; the kernel drops it when
the process ends, however it ends, so a crash leaves nothing to clean up.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from models.errors import ConfigurationError

LOCK_NAME = "up.lock"


def hold(data_dir: Path) -> IO[str]:
    """Take the folder's lock for this process (keep the file open), or refuse naming the pid."""
    path = data_dir / LOCK_NAME
    handle = path.open("a+", encoding="utf-8")  # not inherited by the processes it starts
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigurationError(
            f"a toolbox up is already running with the data folder {data_dir} (pid {holder}):"
            " stop it first (Ctrl-C there); another stack on this machine needs its own"
            " TOOLBOX_DATA_DIR, and more workers next to it are started as in Scaling out"
            " (celery ... worker -n agents2@%h)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
