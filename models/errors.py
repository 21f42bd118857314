"""The one error root of the worker.

``models`` is the bottom layer that every other package may import, so the
tree lives here::

    ToolboxError
    ├── ConfigurationError          a setting is missing, malformed or a placeholder
    ├── PermanentError              retrying cannot help; fail at once
    │   ├── ValidationFailed        a payload or response does not match its schema
    │   │   └── IdempotencyConflict an idempotency key reused for a different request
    │   ├── NotFound                a referenced row does not exist
    │   ├── AgentUnavailable        unknown or inactive agent kind
    │   ├── NotSupported            a feature that is deliberately not implemented
    │   ├── TaskCancelled           the task was cancelled by a user
    │   ├── RedeliveryExceeded      a message came back too often (crash loop)
    │   └── LMSRequestRejected      the LMS refused the request (4xx other than throttling)
    │       └── LMSAuthRejected     the LMS refused our credentials (token endpoint, 401)
    ├── WaitTimeout                 a caller stopped waiting; the task goes on
    └── RetryableError              transient; retry with backoff within the budget
        ├── TaskTimeout             the soft time limit was reached
        ├── ConcurrencyLimitReached no slot free for the agent (does not spend a retry)
        ├── ModelError              a chat model failed transiently (rate limit, timeout)
        └── LMSUnavailable          network error, 5xx or throttling from an LMS

Retry policy keys off these classes, never off message text.
"""

from __future__ import annotations

from typing import Any


class ToolboxError(Exception):
    """The ToolboxAI worker failed."""

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or type(self).__name__).strip()
        self.details = details
        super().__init__(self.message)


class ConfigurationError(ToolboxError):
    """A setting is missing or invalid."""


class PermanentError(ToolboxError):
    """The operation failed and retrying cannot help."""


class RetryableError(ToolboxError):
    """The operation failed transiently and may succeed later."""

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **details: Any
    ) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


SHOWN_ERRORS = 20
"""How many problems a message lists; ``ValidationFailed.errors`` keeps every one."""


def listed(errors: list[str]) -> str:
    """``errors`` joined for one message line, the first ``SHOWN_ERRORS`` of them.

    An input with 2,000 unknown keys made an error line of 77 KB.
    """
    shown = "; ".join(errors[:SHOWN_ERRORS])
    if len(errors) > SHOWN_ERRORS:
        shown += f"; and {len(errors) - SHOWN_ERRORS} more problems"
    return shown


class ValidationFailed(PermanentError):
    """The data does not match its schema."""

    def __init__(self, message: str | None = None, *, errors: list[str] | None = None) -> None:
        self.errors = errors or []
        if message is None and self.errors:
            message = "invalid input: " + listed(self.errors)
        super().__init__(message, errors=self.errors)


class IdempotencyConflict(ValidationFailed):
    """The idempotency key already names a task of another agent or with another input."""


class NotFound(PermanentError):
    """The referenced row does not exist."""


class AgentUnavailable(PermanentError):
    """The agent is unknown or inactive."""


class NotSupported(PermanentError):
    """This feature is not supported yet."""


class TaskCancelled(PermanentError):
    """The task was cancelled."""


class RedeliveryExceeded(PermanentError):
    """The task was delivered too many times without finishing (crash loop)."""


class LMSRequestRejected(PermanentError):
    """The LMS rejected the request."""

    def __init__(self, message: str | None = None, *, status_code: int | None = None) -> None:
        super().__init__(message, status_code=status_code)
        self.status_code = status_code


class LMSAuthRejected(LMSRequestRejected):
    """The LMS refused the integration's credentials."""


class TaskTimeout(RetryableError):
    """The task reached its soft time limit."""


class ConcurrencyLimitReached(RetryableError):
    """Every concurrency slot of the agent is taken."""


class ModelError(RetryableError):
    """The chat model failed transiently."""


class LMSUnavailable(RetryableError):
    """The LMS could not be reached or asked us to slow down."""


class WaitTimeout(ToolboxError):
    """The task did not finish within the time waited (it keeps running)."""


SHOWN_MAX = 50
"""Characters of a value the user gave that an error message repeats; a longer one is cut."""


def quoted(value: str) -> str:
    """``value`` as an error message repeats it: its ``repr``, cut to ``SHOWN_MAX`` characters
    (``'xxx'...``), so a pasted paragraph neither floods the line nor hides the message."""
    return repr(value[:SHOWN_MAX]) + ("..." if len(value) > SHOWN_MAX else "")


def shown(value: object) -> str:
    """``value`` as an error message repeats it (``repr``); an integer too long to print
    (Python refuses past 4,300 digits) by its size, any other cut as ``quoted`` cuts."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 160:
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text[:SHOWN_MAX] + ("..." if len(text) > SHOWN_MAX else "")
