"""A taken port is worded in one place, ``workers.ports``, for ``toolbox metrics`` and Flower.

The exact lines each prints are pinned by ``test_ops_status`` and ``test_flower``.
"""

from __future__ import annotations

from pathlib import Path

from workers.ports import PORT_IN_USE, cannot_listen

WORKERS = Path(__file__).resolve().parents[2] / "workers"


def test_the_port_in_use_wording_has_one_home() -> None:
    homes = [
        str(path.relative_to(WORKERS))
        for path in sorted(WORKERS.rglob("*.py"))
        if PORT_IN_USE in path.read_text(encoding="utf-8")
    ]
    assert homes == ["ports.py"]
    assert cannot_listen("127.0.0.1", 9808, PORT_IN_USE) == (
        "cannot listen on 127.0.0.1:9808: the port is in use by another process"
    )
