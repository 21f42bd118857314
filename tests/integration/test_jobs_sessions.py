"""Closing what clients left open, on real PostgreSQL, once and twice at once."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, text

from tests.integration.ops_support import count, insert, twice_at_once, user
from workers.jobs.sessions import close_abandoned
from workers.settings import SessionPolicy

HOUR = 3600


def seed(engine: Engine) -> dict[str, uuid.UUID]:
    """One abandoned and one live row of every kind."""
    ids: dict[str, uuid.UUID] = {}
    with engine.begin() as connection:
        owner = user(connection)

        def add(key: str, table: str, **values: Any) -> None:
            json = tuple(k for k, v in values.items() if isinstance(v, dict))
            ids[key] = insert(connection, table, json=json, **values)

        add(
            "plugin_silent",
            "roblox_plugins",
            studio_id=uuid.uuid4().hex,
            user_id=owner,
            plugin_version="1.0",
            last_heartbeat_ago=900,
        )
        add(
            "plugin_alive",
            "roblox_plugins",
            studio_id=uuid.uuid4().hex,
            user_id=owner,
            plugin_version="1.0",
            last_heartbeat_ago=10,
        )
        add(
            "game_idle",
            "roblox_game_sessions",
            session_name="idle",
            status="active",
            started_at_ago=3 * HOUR,
        )
        add(
            "player_left",
            "roblox_player_sessions",
            game_session_id=ids["game_idle"],
            joined_at_ago=3 * HOUR,
            left_at_ago=2 * HOUR,
            duration_seconds=3600,
        )
        add(
            "player_stuck",
            "roblox_player_sessions",
            game_session_id=ids["game_idle"],
            joined_at_ago=20 * HOUR,
        )
        add(
            "game_live",
            "roblox_game_sessions",
            session_name="live",
            status="active",
            started_at_ago=HOUR,
        )
        add(
            "player_live",
            "roblox_player_sessions",
            game_session_id=ids["game_live"],
            joined_at_ago=HOUR,
        )
        add(
            "login_expired",
            "user_sessions",
            user_id=owner,
            token=uuid.uuid4().hex,
            expires_at_ago=60,
        )
        add(
            "login_refreshable",
            "user_sessions",
            user_id=owner,
            token=uuid.uuid4().hex,
            expires_at_ago=60,
            refresh_expires_at_ago=-HOUR,
        )
        add(
            "socket_stale",
            "websocket_connections",
            connection_id=uuid.uuid4().hex,
            socket_id=uuid.uuid4().hex,
            connection_type="dashboard",
            last_ping_ago=600,
        )
        add(
            "socket_alive",
            "websocket_connections",
            connection_id=uuid.uuid4().hex,
            socket_id=uuid.uuid4().hex,
            connection_type="dashboard",
            last_ping_ago=5,
        )
        add(
            "collab_idle",
            "collaboration_sessions",
            session_name="idle",
            session_type="review",
            status="active",
            started_at_ago=5 * HOUR,
            last_activity_ago=3 * HOUR,
        )
        add(
            "participant",
            "collaboration_participants",
            session_id=ids["collab_idle"],
            user_id=owner,
            joined_at_ago=4 * HOUR,
        )
        add("collab_live", "collaboration_sessions", session_name="live", session_type="review",
            status="active", last_activity_ago=60)  # fmt: skip
    return ids


def row(engine: Engine, table: str, row_id: uuid.UUID) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            text(f"SELECT *, now() AS now FROM {table} WHERE id = :id"), {"id": row_id}
        ).one()


def test_abandoned_rows_are_closed_with_reasons_and_durations(engine: Engine) -> None:
    ids = seed(engine)
    closed = close_abandoned(engine, SessionPolicy())
    assert closed == {
        "plugins": 1, "games": 1, "players": 1, "logins": 1, "sockets": 1, "collaborations": 1,
    }  # fmt: skip
    plugin = row(engine, "roblox_plugins", ids["plugin_silent"])
    assert plugin.status == "inactive"
    assert plugin.connection_metadata["inactive_reason"] == "heartbeat_timeout"
    assert row(engine, "roblox_plugins", ids["plugin_alive"]).status == "active"

    game = row(engine, "roblox_game_sessions", ids["game_idle"])
    left = row(engine, "roblox_player_sessions", ids["player_left"])
    assert game.status == "completed" and game.current_players == 0
    assert game.session_data == {"close_reason": "idle"}
    assert game.ended_at == left.left_at, "a game ends at its last activity, not when noticed"
    stuck = row(engine, "roblox_player_sessions", ids["player_stuck"])
    assert stuck.duration_seconds == 12 * HOUR, "no stay outlasts player_max_hours"
    assert (stuck.left_at - stuck.joined_at).total_seconds() == 12 * HOUR
    assert row(engine, "roblox_game_sessions", ids["game_live"]).status == "active"
    assert row(engine, "roblox_player_sessions", ids["player_live"]).left_at is None

    login = row(engine, "user_sessions", ids["login_expired"])
    assert (login.is_active, login.revoked_reason) == (False, "expired")
    assert login.revoked_at is not None
    assert row(engine, "user_sessions", ids["login_refreshable"]).is_active

    socket = row(engine, "websocket_connections", ids["socket_stale"])
    assert (socket.is_active, socket.disconnect_reason) == (False, "ping_timeout")
    assert socket.disconnected_at == socket.last_ping
    assert row(engine, "websocket_connections", ids["socket_alive"]).is_active

    collab = row(engine, "collaboration_sessions", ids["collab_idle"])
    assert collab.status == "ended" and collab.ended_at == collab.last_activity
    assert collab.change_log[-1]["reason"] == "idle"
    participant = row(engine, "collaboration_participants", ids["participant"])
    assert not participant.is_active and participant.left_at == collab.ended_at
    assert participant.duration_seconds == 3600
    assert row(engine, "collaboration_sessions", ids["collab_live"]).status == "active"

    assert close_abandoned(engine, SessionPolicy()) == dict.fromkeys(closed, 0)


def test_limits_are_configurable(engine: Engine) -> None:
    ids = seed(engine)
    close_abandoned(engine, SessionPolicy(plugin_heartbeat_seconds=5, socket_ping_seconds=2))
    assert row(engine, "roblox_plugins", ids["plugin_alive"]).status == "inactive"
    assert not row(engine, "websocket_connections", ids["socket_alive"]).is_active


def test_two_runs_at_once_close_each_row_once(engine: Engine) -> None:
    for _ in range(8):
        seed(engine)
    results = twice_at_once(lambda: close_abandoned(engine, SessionPolicy(), batch=2))
    totals = {step: results[0][step] + results[1][step] for step in results[0]}
    assert totals == {
        "plugins": 8, "games": 8, "players": 8, "logins": 8, "sockets": 8, "collaborations": 8,
    }  # fmt: skip
    ended = count(
        engine,
        "SELECT count(*) FROM collaboration_sessions WHERE status = 'ended'"
        " AND jsonb_array_length(change_log) = 1",
    )
    assert ended == 8, "each session ended exactly once"
