"""Encryption at rest for LMS secrets, with key rotation.

Secrets are Fernet tokens (AES-128-CBC + HMAC-SHA256, with a timestamp).
Keys come from the caller, newest first: the newest encrypts, every key
decrypts, so a new key can be put in front while old tokens still open, and
``rotate`` re-encrypts a token under the newest key.  Nothing here reads
settings; ``workers.secrets`` builds the box from ``TOOLBOX_SECRET_KEYS``.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from models.errors import ConfigurationError


class SecretBox:
    """Encrypts with the first key, decrypts with any; ``repr`` shows only the key count."""

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ConfigurationError("at least one encryption key is needed for LMS secrets")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                # The key itself must not reach the message.
                raise ConfigurationError(
                    f"encryption key #{position} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes)"
                ) from None
        self._newest = fernets[0]
        self._all = MultiFernet(fernets)
        self.key_count = len(fernets)

    def __repr__(self) -> str:
        return f"SecretBox(keys={self.key_count})"

    def encrypt(self, plain: str) -> str:
        return self._newest.encrypt(plain.encode()).decode("ascii")

    def decrypt(self, token: str, *, what: str = "an LMS secret") -> str:
        """The plain text, or ``ConfigurationError`` when no key opens ``token``."""
        try:
            return self._all.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise ConfigurationError(
                f"{what} cannot be decrypted with any configured key: this process may lack "
                "the new key (TOOLBOX_SECRET_KEYS=new,old must reach every worker, beat and CLI "
                "before `toolbox lms rotate-keys`), or a key was removed before the rotation"
            ) from None

    def is_current(self, token: str) -> bool:
        """True when the newest key already encrypts ``token``."""
        try:
            self._newest.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def rotate(self, token: str, *, what: str = "an LMS secret") -> str:
        """``token`` re-encrypted under the newest key (its original timestamp is kept)."""
        try:
            return self._all.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise ConfigurationError(
                f"{what} cannot be decrypted with any configured key; it cannot be rotated"
            ) from None


def generate_key() -> str:
    """A new random key, as ``TOOLBOX_SECRET_KEYS`` expects it."""
    return Fernet.generate_key().decode("ascii")
