"""Platform name -> client class: the one place that knows every LMS client.

Each client declares the option keys it reads (``LMSClient.option_keys``);
``unknown_option`` words the refusal of any other, for ``lms.store`` (the
Python API) and the command line alike.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
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


def unknown_option(platform: str, keys: Iterable[str]) -> str | None:
    """Why the first of ``keys`` that ``platform``'s client does not read is refused, or None.

    ``unknown option 'acount_id' for canvas; did you mean 'account_id'? (known:
    account_id, throttle_threshold)``: the client would ignore it, silently.
    """
    known = sorted(client_class(platform).option_keys)
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            guess = f"; did you mean {close[0]!r}?" if close else ""
            listed = ", ".join(known) if known else f"none, {platform} reads no options"
            return f"unknown option {key!r} for {platform}{guess} (known: {listed})"
    return None
