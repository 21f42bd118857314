"""Beat creates the folder of its schedule file (the Procfile's ``.toolbox``) if missing.

Given server URLs nothing else creates it before ``honcho start``, and beat
died with ``FileNotFoundError: ... .toolbox/celerybeat-schedule.dat``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from celery.utils.imports import symbol_by_name

from models.errors import ConfigurationError
from workers.beat_scheduler import Scheduler
from workers.celeryconfig import build_config
from workers.settings import Settings


@pytest.fixture
def app() -> Iterator[Celery]:
    made = Celery("beat-test", set_as_current=False)
    made.conf.beat_schedule = {"relay": {"task": "toolbox.maintenance.relay", "schedule": 5.0}}
    yield made
    made.close()


def test_the_configured_scheduler_creates_a_missing_folder(app: Celery, tmp_path: Path) -> None:
    settings = Settings(database_url="postgresql://u@h/d", redis_url="redis://h:6379/0")
    configured = symbol_by_name(build_config(settings)["beat_scheduler"])
    assert issubclass(configured, Scheduler)
    schedule = tmp_path / "fresh checkout" / ".toolbox" / "celerybeat-schedule"
    scheduler = configured(app=app, schedule_filename=str(schedule), lazy=False)
    try:
        assert "relay" in scheduler.schedule
    finally:
        scheduler.close()
    assert schedule.parent.is_dir() and list(schedule.parent.iterdir())


def test_a_folder_that_cannot_be_made_is_one_line(app: Celery, tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the folder should be")
    schedule = tmp_path / "data" / "celerybeat-schedule"
    with pytest.raises(ConfigurationError) as refused:
        Scheduler(app=app, schedule_filename=str(schedule), lazy=False)
    assert refused.value.message.endswith("is not usable: not a folder"), refused.value.message
    assert "\n" not in refused.value.message
