"""Usage errors of every command are one ``error:`` line naming the command and the flag.

They were typer's usage message: the usage line, a hint and the error in a box
wrapped at the terminal's width.  In process: ``toolbox`` runs this ``app``,
and a usage error ends before any command runs (``--timeout`` through the
real command: tests/integration/test_cli_input).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from workers.cli import app
from workers.settings import get_settings

COMMANDS = "up, flower, migrate, config, status, metrics, db, task, lms, workflow"
REFUSALS = {
    # a value out of range, not a whole number, refused by a parser
    "task list --limit 0": "toolbox task list: --limit: must be at least 1, got '0'",
    "metrics --port 65536": "toolbox metrics: --port: must be at most 65535, got '65536'",
    "task submit echo --priority high": (
        "toolbox task submit: --priority: expected a whole number, got 'high'"
    ),
    "workflow generate --subject science --grade six --topic volcanoes": (
        "toolbox workflow generate: --grade: expected a whole number, got 'six'"
    ),
    "task submit echo --wait --timeout nan": (
        "toolbox task submit: --timeout: expected a positive number of seconds, got 'nan'"
    ),
    "up --stop-timeout 0": (
        "toolbox up: --stop-timeout: expected a positive number of seconds, got '0'"
    ),
    "up --stop-timeout 1e999": (
        "toolbox up: --stop-timeout: expected a positive number of seconds, got '1e999'"
    ),
    # a value refused once parsed, by the command's own checks
    "task submit echo --priority 12": (
        "toolbox task submit: --priority: must be between 0 and 9, got 12"
    ),
    "task submit echo --idempotency-key=": (
        "toolbox task submit: --idempotency-key: empty or blank; leave the option out for none"
    ),
    f"task submit echo --idempotency-key {'k' * 300}": (
        "toolbox task submit: --idempotency-key: at most 255 characters, got 300"
    ),
    "task submit echo --priority 12 --idempotency-key=": (
        "toolbox task submit: --priority: must be between 0 and 9, got 12;"
        " --idempotency-key: empty or blank; leave the option out for none"
    ),
    "task list --status bogus": (
        "toolbox task list: --status: unknown status 'bogus'; valid: pending, queued, running,"
        " retrying, completed, failed, cancelled"
    ),
    "task list --status=": (
        "toolbox task list: --status: unknown status ''; valid: pending, queued, running,"
        " retrying, completed, failed, cancelled"
    ),
    "lms add canvas --institution x --base-url https://lms.example --frequency-hours 0": (
        "toolbox lms add: --frequency-hours: expected whole hours from 1 to 8760 (a year), got '0'"
    ),
    "lms add canvas --institution x --base-url https://lms.example --frequency-hours abc": (
        "toolbox lms add: --frequency-hours: expected whole hours from 1 to 8760 (a year),"
        " got 'abc'"
    ),
    "lms update x --frequency-hours=": (
        "toolbox lms update: --frequency-hours: expected whole hours from 1 to 8760 (a year),"
        " got ''"
    ),
    "up --processes foo": (
        "toolbox up: --processes: unknown process 'foo'; known: agents, lms, passback, maintenance,"
        " beat, flower"
    ),
    "up --processes=": (
        "toolbox up: --processes: names no process; choose from agents, lms, passback, maintenance,"
        " beat, flower"
    ),
    "up --processes agents,agents": (
        "toolbox up: --processes: names agents more than once; each runs once per toolbox up"
        " (more agent processes: TOOLBOX_CONCURRENCY)"
    ),
    # --input and the LMS options, read by the command itself
    "task submit echo --input @/nonexistent/in.json": (
        "toolbox task submit: --input @/nonexistent/in.json: cannot read /nonexistent/in.json"
        " (no such file or directory)"
    ),
    "task submit echo --input @": (
        "toolbox task submit: --input @: name the file after the @ (--input @FILE)"
    ),
    "task submit echo --input [1]": "toolbox task submit: --input: must be a JSON object",
    # numbers Python cannot hold: a 59-line ValueError traceback, then jsonb's refusal of inf
    f'task submit echo --input {{"fail_attempts":{"1" * 5000}}}': (
        "toolbox task submit: --input: not valid JSON: a number of 5000 digits is too long;"
        " give at most 4300"
    ),
    'task submit echo --input {"fail_attempts":-1e999}': (
        "toolbox task submit: --input: not valid JSON: -1e999 is beyond the range of a JSON"
        " number here (about 1.8e308)"
    ),
    f"task submit echo --wait --timeout {'9' * 5000}x": (
        "toolbox task submit: --timeout: expected a positive number of seconds, got"
        f" '{'9' * 50}'..."
    ),
    "task submit echo --input {nope": (
        "toolbox task submit: --input: not valid JSON: Expecting property name enclosed in"
        " double quotes at line 1 column 2"
    ),
    "lms add canvas --institution x --base-url https://lms.example --api-key k --option bad": (
        "toolbox lms add: --option: expected KEY=VALUE, got 'bad'"
    ),
    "lms add canvas --institution x --base-url https://lms.example --api-key k"
    " --options-json [1]": "toolbox lms add: --options-json: must be a JSON object",
    "lms update x --options-json {nope": (
        "toolbox lms update: --options-json: not valid JSON: Expecting property name enclosed"
        " in double quotes at line 1 column 2"
    ),
    'lms update x --options-json {"sandbox":NaN}': (
        "toolbox lms update: --options-json: not valid JSON: NaN is not a JSON value (JSON has"
        " no NaN or Infinity); give a number"
    ),
    "lms update x --option =v": "toolbox lms update: --option: expected KEY=VALUE, got '=v'",
    # an option key the platform's client does not read: a typo it would ignore
    "lms add canvas --institution x --base-url https://lms.example --api-key k"
    " --option acount_id=1": (
        "toolbox lms add: --option: unknown option 'acount_id' for canvas; did you mean"
        " 'account_id'? (known: account_id, throttle_threshold)"
    ),
    "lms add schoology --institution x --base-url https://lms.example --client-secret s"
    ' --option user_id=1 --options-json {"user_id":"2","timezone":"UTC","memberships_ulr":"u"}': (
        "toolbox lms add: --options-json: unknown option 'memberships_ulr' for schoology"
        " (known: requests_per_window, timezone, user_id, window_seconds)"
    ),
    "lms add moodle --institution x --base-url https://lms.example --api-key k"
    ' --options-json {"a":1}': (
        "toolbox lms add: --options-json: unknown option 'a' for moodle (known: none, moodle"
        " reads no options)"
    ),
    "workflow generate --subject science --grade 13 --topic volcanoes": (
        "toolbox workflow generate: --grade: Input should be less than or equal to 12"
    ),
    # an unknown option, with and without a close one
    "task list --limt 5": (
        "toolbox task list: no such option --limt; did you mean --limit?"
        " (options: --status, --agent, --limit, --json, --help)"
    ),
    "up --bogus": (
        "toolbox up: no such option --bogus (options: --processes, --stop-timeout, --help)"
    ),
    # only options, a boolean flag with its --no- form
    "migrate --bogus": "toolbox migrate: no such option --bogus (options: --help)",
    "lms update x --bogus": (
        "toolbox lms update: no such option --bogus (options: --institution, --base-url,"
        " --client-id, --api-key, --client-secret, --refresh-token, --private-key-file,"
        " --prompt-secret, --token-endpoint, --auth-endpoint, --api-version, --option,"
        " --options-json, --frequency-hours, --grade-passback, --no-grade-passback,"
        " --roster-sync, --no-roster-sync, --content-sync, --no-content-sync, --json, --help)"
    ),
    # missing, extra, an option without its value, a flag with one
    "task show": "toolbox task show: missing argument ID",
    "lms add canvas": "toolbox lms add: missing option --institution",
    "migrate 0001 0002": "toolbox migrate: got unexpected extra argument(s) (0002)",
    "task list --limit": "toolbox task list: option '--limit' requires an argument",
    "workflow show --json=yes": "toolbox workflow show: option '--json' does not take a value",
    # an unknown command
    "tsak list": f"toolbox: no such command 'tsak'; did you mean 'task'? (commands: {COMMANDS})",
    "workflow start": (
        "toolbox workflow: no such command 'start' (commands: generate, show, cancel)"
    ),
}


@pytest.fixture(autouse=True)
def nothing_answers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A command let through by mistake fails on connecting, in this process, starting nothing.

    (No embedded servers in the current folder, no ``toolbox up`` stack.)
    """
    monkeypatch.setenv("TOOLBOX_DATABASE_URL", "postgresql://someone@127.0.0.1:1/toolbox")
    monkeypatch.setenv("TOOLBOX_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_each_usage_error_is_one_line_on_a_narrow_terminal() -> None:
    runner = CliRunner()
    shown = {}
    for args in REFUSALS:
        result = runner.invoke(app, args.split(), env={"COLUMNS": "40"})
        shown[args] = (result.exit_code, result.stdout, result.stderr)
    assert shown == {args: (2, "", f"error: {line}\n") for args, line in REFUSALS.items()}


@pytest.mark.parametrize("group", [[], ["task"], ["lms"], ["workflow"], ["db"]])
def test_a_group_alone_prints_its_help_as_help_does(group: list[str]) -> None:
    runner = CliRunner()
    alone = runner.invoke(app, group, env={"COLUMNS": "80"})
    asked = runner.invoke(app, [*group, "--help"], env={"COLUMNS": "80"})
    assert (alone.exit_code, alone.stdout, alone.stderr) == (0, asked.stdout, "")
    assert asked.exit_code == 0 and "Usage: toolbox" in asked.stdout
