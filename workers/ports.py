"""How a server that cannot take its port says so, for ``toolbox metrics`` and Flower alike.

A module of its own so that neither imports the other (``workers.flower`` would pull
the exporter's Prometheus and WSGI machinery in through ``workers.metrics``).
"""

from __future__ import annotations

PORT_IN_USE = "the port is in use by another process"
"""Why a bind failed with ``EADDRINUSE``."""


def cannot_listen(address: str, port: int, reason: str) -> str:
    """``cannot listen on 127.0.0.1:9808: the port is in use by another process``."""
    return f"cannot listen on {address}:{port}: {reason}"
