"""Worker tests only (``start_worker(include="tests.quick_sync_retries")``): LMS sync
attempts that ask the LMS once and Celery retries seconds apart, not minutes.

Every transient answer ends the attempt (no in-process retry), so a fake LMS's
count of course-list requests is the count of sync attempts.
"""

from __future__ import annotations

import lms.http
import tasks.lms

tasks.lms.SYNC_RETRY_CAP_SECONDS = 4.0  # a failure's retry waits 2-4 s


def _no_retry_here(*_: object) -> None:
    """``LMSHttp._delay``: never wait in-process, the attempt ends."""
    return None


lms.http.LMSHttp._delay = _no_retry_here  # type: ignore[method-assign]
