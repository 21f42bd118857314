"""Platform name -> client class: the one place that knows every LMS client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lms.base import ConnectionConfig, LMSClient
from lms.blackboard import BlackboardClient
from lms.canvas import CanvasClient
from lms.lti import LTIAdvantageClient
from lms.moodle import MoodleClient
from lms.oneroster import OneRosterClient
from lms.schoology import SchoologyClient
from models.errors import NotSupported

CLIENTS: Mapping[str, type[LMSClient]] = {
    client.platform: client
    for client in (
        CanvasClient,
        SchoologyClient,
        MoodleClient,
        BlackboardClient,
        LTIAdvantageClient,
        OneRosterClient,
    )
}
PLATFORMS: tuple[str, ...] = tuple(CLIENTS)


def client_class(platform: str) -> type[LMSClient]:
    try:
        return CLIENTS[platform]
    except KeyError:
        raise NotSupported(
            f"LMS platform {platform!r} is not supported; supported: {', '.join(PLATFORMS)}"
        ) from None


def make_client(config: ConnectionConfig, **kwargs: Any) -> LMSClient:
    """A client for ``config.platform``; ``kwargs`` (``sleep``, ``transport``...) pass through."""
    return client_class(config.platform)(config, **kwargs)
