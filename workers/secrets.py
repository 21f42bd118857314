"""The ``SecretBox`` of this process, from ``TOOLBOX_SECRET_KEYS`` (newest key first).

Production's stack refuses to start without keys (``require_stack_secrets``), and a
service's process that reaches for LMS secrets without them is refused here.  In development and
tests without them, one key is generated into ``<data_dir>/secret.key``
(mode 0600) and reused, with a warning, so ``toolbox lms add`` works on a
laptop out of the box.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from lms.secrets import SecretBox, generate_key
from models.errors import ConfigurationError
from workers.settings import ENV_PREFIX, Settings, ensure_data_dir, get_settings

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"


def secret_box(settings: Settings | None = None) -> SecretBox:
    settings = settings or get_settings()
    keys = [key.get_secret_value() for key in settings.secret_keys]
    if not keys:
        if settings.env == "production":  # a service's process: the stack refuses to start
            raise ConfigurationError(
                f"{ENV_PREFIX}SECRET_KEYS is required in production to read or store LMS secrets"
            )
        keys = [development_key(settings.data_dir.resolve())]
    return SecretBox(keys)  # the settings checked every key


@functools.cache
def development_key(data_dir: Path) -> str:
    """The key in ``data_dir/secret.key``, created (0600) on first use; warns once per process."""
    path = data_dir / KEY_FILE
    if not path.exists():
        ensure_data_dir(data_dir)
        _create_atomically(path, generate_key())
    key = path.read_text().strip()
    log.warning(
        "%sSECRET_KEYS is not set: LMS secrets are encrypted with the development key in %s. "
        "Before setting %sSECRET_KEYS, list this key last in it and run "
        "`toolbox lms rotate-keys`, or the stored secrets cannot be read.",
        ENV_PREFIX, path, ENV_PREFIX,
    )  # fmt: skip
    return key


def _create_atomically(path: Path, key: str) -> None:
    """Write a temporary 0600 file, then link it in: readers never see half a key."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(descriptor, key.encode() + b"\n")
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process made it first: use theirs
    finally:
        temporary.unlink()
