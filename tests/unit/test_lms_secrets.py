"""Encryption of LMS secrets: rotation, key checks, the development key."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from lms.base import ConnectionConfig, Credentials
from lms.secrets import SecretBox, generate_key
from models.errors import ConfigurationError
from workers.secrets import development_key, secret_box
from workers.settings import Settings, load_settings


def test_the_newest_key_encrypts_every_key_decrypts_and_rotation_moves_to_the_newest() -> None:
    old, new = generate_key(), generate_key()
    token = SecretBox([old]).encrypt("canvas-token")
    box = SecretBox([new, old])
    assert box.decrypt(token) == "canvas-token"
    assert not box.is_current(token)
    rotated = box.rotate(token)
    assert box.is_current(rotated) and SecretBox([new]).decrypt(rotated) == "canvas-token"
    assert box.is_current(box.encrypt("x"))
    with pytest.raises(ConfigurationError, match="cannot be decrypted with any configured key"):
        SecretBox([new]).decrypt(token)


def test_bad_keys_are_refused_without_showing_them() -> None:
    with pytest.raises(ConfigurationError, match="key #2 is not a Fernet key") as caught:
        SecretBox([generate_key(), "not-a-real-key-value"])
    assert "not-a-real-key-value" not in str(caught.value)
    with pytest.raises(ConfigurationError):
        SecretBox([])


def test_secrets_stay_out_of_reprs() -> None:
    key = generate_key()
    config = ConnectionConfig("canvas", "https://lms", Credentials("id", "s3cret-a", "s3cret-b"))
    assert "s3cret" not in repr(config) and key not in repr(SecretBox([key]))


def test_settings_keys_must_be_fernet_keys_and_the_error_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked when the settings load, so a bad key stops every command up front."""
    monkeypatch.setenv("TOOLBOX_SECRET_KEYS", f"{generate_key()},changeme-please")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(data_dir=tmp_path)
    message = caught.value.message
    assert message.startswith("TOOLBOX_SECRET_KEYS: key #2 of 2 is not a valid Fernet key")
    assert "Fernet.generate_key()" in message and "changeme-please" not in message
    first, second = generate_key(), generate_key()
    box = secret_box(Settings(data_dir=tmp_path, secret_keys=[SecretStr(first), SecretStr(second)]))
    assert box.key_count == 2 and SecretBox([first]).decrypt(box.encrypt("x")) == "x"


def test_development_key_is_created_private_reused_and_announced_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="workers.secrets"):
        token = secret_box(settings).encrypt("moodle-token")
        assert secret_box(settings).decrypt(token) == "moodle-token"
    key_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [r.message.count("TOOLBOX_SECRET_KEYS is not set") for r in caplog.records] == [1]
    development_key.cache_clear()  # a new process reads the same file
    assert SecretBox([development_key((tmp_path / "data").resolve())]).decrypt(token)


def test_an_unopenable_secret_says_the_process_may_lack_the_new_key() -> None:
    """After a rotation, a worker still running with only the old key cannot read anything."""
    token = SecretBox([generate_key()]).encrypt("canvas-token")
    with pytest.raises(ConfigurationError) as refused:
        SecretBox([generate_key()]).decrypt(token, what="api_key_encrypted of LMS integration 1")
    message = refused.value.message
    assert message.startswith("api_key_encrypted of LMS integration 1 cannot be decrypted")
    assert "this process may lack the new key" in message
    assert "TOOLBOX_SECRET_KEYS=new,old must reach every worker, beat and CLI" in message
    assert "canvas-token" not in message
