"""Close what clients left open, with the reason and an honest end time.

- Roblox Studio plugins whose heartbeat stopped become ``inactive``.
- Game sessions with nobody playing for a while (or running past the
  longest plausible class) become ``completed``; ``ended_at`` is the last
  activity seen, not the time we noticed.  Player sessions of finished
  games, or open for longer than any class, get ``left_at`` and
  ``duration_seconds``.
- Login sessions past their expiry (and their refresh token's) are
  revoked with ``revoked_reason = 'expired'``.
- WebSocket connections without a ping are marked disconnected
  (``ping_timeout``, at their last ping).
- Idle collaboration sessions are ``ended`` with their participants.

Every step updates at most ``batch`` rows per transaction and picks them
with ``FOR UPDATE SKIP LOCKED``, so a twin run takes other rows and nothing
is closed twice.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, text

from workers.jobs.common import Batch, run_batches
from workers.settings import SessionPolicy, get_settings

STEP_SECONDS = 10.0
"""Time budget of one step per run (it runs every minute)."""


def session_limits() -> SessionPolicy:
    return get_settings().sessions


_PLUGINS = text(
    "UPDATE roblox_plugins SET status = 'inactive', connection_metadata ="
    " coalesce(connection_metadata, '{}'::jsonb) || jsonb_build_object('inactive_reason',"
    " 'heartbeat_timeout', 'inactive_since', now())"
    " WHERE id IN (SELECT id FROM roblox_plugins WHERE status = 'active'"
    " AND (last_heartbeat < now() - make_interval(secs => :age)"
    " OR (last_heartbeat IS NULL AND registered_at < now() - make_interval(secs => :age)))"
    " LIMIT :limit FOR UPDATE SKIP LOCKED) RETURNING id"
)

_GAMES = text(
    "WITH activity AS (SELECT g.id, greatest(coalesce(g.started_at, g.created_at),"
    " max(coalesce(p.left_at, p.joined_at))) AS last_activity,"
    " count(p.id) FILTER (WHERE p.left_at IS NULL"
    " AND p.joined_at > now() - make_interval(secs => :player_hours * 3600)) AS playing,"
    " coalesce(g.started_at, g.created_at) < now() - make_interval(secs => :game_hours * 3600)"
    " AS too_long FROM roblox_game_sessions g"
    " LEFT JOIN roblox_player_sessions p ON p.game_session_id = g.id"
    " WHERE g.status IN ('active', 'paused') GROUP BY g.id),"
    " doomed AS (SELECT g.id, a.last_activity, a.too_long FROM roblox_game_sessions g"
    " JOIN activity a ON a.id = g.id WHERE g.status IN ('active', 'paused') AND (a.too_long"
    " OR (a.playing = 0 AND a.last_activity < now() - make_interval(secs => :idle)))"
    " ORDER BY g.id LIMIT :limit FOR UPDATE OF g SKIP LOCKED)"
    " UPDATE roblox_game_sessions g SET status = 'completed', current_players = 0,"
    " ended_at = CASE WHEN d.too_long THEN now() ELSE d.last_activity END,"
    " session_data = coalesce(g.session_data, '{}'::jsonb) || jsonb_build_object("
    "'close_reason', CASE WHEN d.too_long THEN 'max_duration' ELSE 'idle' END)"
    " FROM doomed d WHERE g.id = d.id RETURNING g.id"
)

_PLAYERS = text(
    "WITH doomed AS (SELECT p.id, greatest(p.joined_at, least(CASE WHEN g.status = 'completed'"
    " THEN coalesce(g.ended_at, now()) ELSE now() END,"
    " p.joined_at + make_interval(secs => :player_hours * 3600))) AS left_at"
    " FROM roblox_player_sessions p JOIN roblox_game_sessions g ON g.id = p.game_session_id"
    " WHERE p.left_at IS NULL AND (g.status = 'completed'"
    " OR p.joined_at < now() - make_interval(secs => :player_hours * 3600))"
    " ORDER BY p.id LIMIT :limit FOR UPDATE OF p SKIP LOCKED)"
    " UPDATE roblox_player_sessions p SET left_at = d.left_at,"
    " duration_seconds = floor(extract(epoch FROM d.left_at - p.joined_at))::int"
    " FROM doomed d WHERE p.id = d.id RETURNING p.id"
)

_LOGINS = text(
    "UPDATE user_sessions SET is_active = false, revoked_at = now(), revoked_reason = 'expired'"
    " WHERE id IN (SELECT id FROM user_sessions WHERE is_active AND expires_at < now()"
    " AND (refresh_expires_at IS NULL OR refresh_expires_at < now())"
    " LIMIT :limit FOR UPDATE SKIP LOCKED) RETURNING id"
)

_SOCKETS = text(
    "UPDATE websocket_connections SET is_active = false, disconnected_at = last_ping,"
    " disconnect_reason = 'ping_timeout'"
    " WHERE id IN (SELECT id FROM websocket_connections WHERE is_active"
    " AND last_ping < now() - make_interval(secs => :age) LIMIT :limit FOR UPDATE SKIP LOCKED)"
    " RETURNING id"
)

_COLLABORATIONS = text(
    "WITH doomed AS (SELECT id, greatest(coalesce(started_at, created_at), last_activity)"
    " AS ended_at FROM collaboration_sessions WHERE status IN ('planning', 'active', 'paused')"
    " AND last_activity < now() - make_interval(secs => :idle)"
    " ORDER BY last_activity LIMIT :limit FOR UPDATE SKIP LOCKED),"
    " participants AS (UPDATE collaboration_participants p SET is_active = false,"
    " left_at = coalesce(p.left_at, greatest(p.joined_at, d.ended_at)),"
    " duration_seconds = coalesce(p.duration_seconds, floor(extract(epoch FROM"
    " greatest(p.joined_at, d.ended_at) - p.joined_at))::int)"
    " FROM doomed d WHERE p.session_id = d.id AND (p.is_active OR p.left_at IS NULL)"
    " RETURNING p.id)"
    " UPDATE collaboration_sessions s SET status = 'ended', ended_at = d.ended_at,"
    " current_participants = 0, change_log = s.change_log || jsonb_build_array("
    "jsonb_build_object('change_type', 'session_ended', 'reason', 'idle', 'at', now(),"
    " 'participants_closed', (SELECT count(*) FROM participants)))"
    " FROM doomed d WHERE s.id = d.id RETURNING s.id"
)


def close_plugins(connection: Connection, limit: int, limits: SessionPolicy) -> int:
    params = {"age": limits.plugin_heartbeat_seconds, "limit": limit}
    return len(connection.execute(_PLUGINS, params).all())


def close_games(connection: Connection, limit: int, limits: SessionPolicy) -> int:
    params = {
        "player_hours": limits.player_max_hours,
        "game_hours": limits.game_max_hours,
        "idle": limits.game_idle_seconds,
        "limit": limit,
    }
    return len(connection.execute(_GAMES, params).all())


def close_players(connection: Connection, limit: int, limits: SessionPolicy) -> int:
    params = {"player_hours": limits.player_max_hours, "limit": limit}
    return len(connection.execute(_PLAYERS, params).all())


def expire_logins(connection: Connection, limit: int, limits: SessionPolicy) -> int:
    del limits  # expiry is the session's own ``expires_at``
    return len(connection.execute(_LOGINS, {"limit": limit}).all())


def close_sockets(connection: Connection, limit: int, limits: SessionPolicy) -> int:
    params = {"age": limits.socket_ping_seconds, "limit": limit}
    return len(connection.execute(_SOCKETS, params).all())


def end_collaborations(connection: Connection, limit: int, limits: SessionPolicy) -> int:
    params = {"idle": limits.collaboration_idle_seconds, "limit": limit}
    return len(connection.execute(_COLLABORATIONS, params).all())


Step = Callable[[Connection, int, SessionPolicy], int]
STEPS: tuple[tuple[str, Step], ...] = (
    ("plugins", close_plugins),
    ("games", close_games),
    ("players", close_players),  # after games: players of the games just closed go too
    ("logins", expire_logins),
    ("sockets", close_sockets),
    ("collaborations", end_collaborations),
)


def close_abandoned(
    engine: Engine,
    limits: SessionPolicy | None = None,
    *,
    batch: int = 1000,
    max_batches: int = 100,
    step_seconds: float = STEP_SECONDS,
) -> dict[str, int]:
    """Run every step, one short transaction per batch; returns rows closed per step."""
    bound = limits or session_limits()
    steps = [(name, _bind(step, bound)) for name, step in STEPS]
    return run_batches(
        engine, steps, batch=batch, max_batches=max_batches, step_seconds=step_seconds
    )


def _bind(step: Step, limits: SessionPolicy) -> Batch:
    def batch(connection: Connection, limit: int) -> int:
        return step(connection, limit, limits)

    return batch
