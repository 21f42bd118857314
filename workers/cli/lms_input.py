"""What ``toolbox lms add`` and ``lms update`` read from the operator: secrets, options, hours.

Secrets come from an option, its environment variable or a hidden prompt;
they are checked (and stripped) by ``lms.store``, like every other setting.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from lms.base import Credentials
from lms.registry import unknown_option
from lms.store import MAX_FREQUENCY_HOURS, SECRET_INPUTS, check_secrets_used
from models.errors import ConfigurationError
from workers.cli import json_text
from workers.cli.consoles import console as make_console
from workers.cli.usage import refused

errors = make_console(stderr=True)

#: The secret each platform cannot work without: (Credentials field, option, label).
REQUIRED_SECRET: dict[str, tuple[str, str]] = {
    "canvas": ("api_key", "Canvas API access token"),
    "moodle": ("api_key", "Moodle web service token"),
    "schoology": ("client_secret", "Schoology consumer secret"),
    "blackboard": ("client_secret", "Blackboard application secret"),
    "oneroster": ("client_secret", "OneRoster client secret"),
    "lti": ("private_key_pem", "LTI tool private key (PEM)"),
}
"""Platform -> (the ``Credentials`` field it cannot do without, its name for users); its
flag and variable are ``lms.store.SECRET_INPUTS``'s."""
SECRET_HELP = (
    "Secret; prefer the environment variable or the prompt (options land in shell history)"
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON")]
ClientId = Annotated[str | None, typer.Option(help="OAuth client id / consumer key")]


def _secret_option(field: str, help: str = SECRET_HELP) -> Any:
    """The option of a secret, read from the environment variable ``lms.store`` names it by."""
    return typer.Option(envvar=SECRET_INPUTS[field][1], help=help)


ApiKey = Annotated[str | None, _secret_option("api_key")]
ClientSecret = Annotated[str | None, _secret_option("client_secret")]
RefreshToken = Annotated[str | None, _secret_option("refresh_token")]
PrivateKeyFile = Annotated[
    Path | None, _secret_option("private_key_pem", help="PEM file of the LTI tool key")
]
TokenEndpoint = Annotated[str | None, typer.Option(help="OAuth2 token URL")]
AuthEndpoint = Annotated[str | None, typer.Option(help="OAuth2/OIDC auth URL")]
ApiVersion = Annotated[str | None, typer.Option(help="API version, if the LMS has one")]
OptionPairs = Annotated[
    list[str] | None,
    typer.Option(metavar="KEY=VALUE", help="Platform option KEY=VALUE (repeatable)"),
]
OptionsJson = Annotated[
    str | None,
    typer.Option(metavar="JSON", help='Platform options as JSON, e.g. \'{"user_id": "42"}\''),
]


def hours(value: str | int) -> int:
    """A typer ``parser`` for ``--frequency-hours``: whole hours, at most a year."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_FREQUENCY_HOURS:
        raise ValueError(  # worded with the command and flag by workers.cli.usage
            f"expected whole hours from 1 to {MAX_FREQUENCY_HOURS} (a year), got {str(value)!r}"
        )
    return number


def credentials(
    platform: str,
    client_id: str | None,
    api_key: str | None,
    client_secret: str | None,
    refresh_token: str | None,
    private_key_file: Path | None,
) -> Credentials:
    private_key = read_key(private_key_file) if private_key_file else None
    given = {"api_key": api_key, "client_secret": client_secret, "private_key_pem": private_key}
    needed = REQUIRED_SECRET.get(platform)
    if needed is not None and not given[needed[0]]:
        field, label = needed
        option, variable = SECRET_INPUTS[field]
        check_secrets_used(platform, Credentials(refresh_token=refresh_token, **given))
        if field == "private_key_pem" or not sys.stdin.isatty():
            prompted = "" if field == "private_key_pem" else " (or run it in a terminal)"
            raise ConfigurationError(
                f"{platform} needs the {label}: pass {option} or set {variable}{prompted}"
            )
        given[field] = typer.prompt(label, hide_input=True).strip()
    return Credentials(client_id=client_id, refresh_token=refresh_token, **given)


def read_key(path: Path) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the private key file {path}: {exc.strerror}"
        ) from None
    if os.stat(path).st_mode & 0o077:
        shown = escape(str(path))  # a file name, not markup: '[x]' in it must stay
        errors.print(f"[yellow]warning:[/yellow] {shown} is readable by other users; chmod 600 it")
    return text


def json_options(as_json: str | None) -> dict[str, Any]:
    """The platform options ``--options-json`` gives (a JSON object); none when not given."""
    if not as_json:
        return {}
    try:
        loaded = json_text.loads(as_json)
    except json_text.NotJson as exc:
        raise refused("--options-json", f"not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise refused("--options-json", "must be a JSON object")
    return loaded


def pair_options(pairs: list[str] | None) -> dict[str, Any]:
    """The platform options the ``--option KEY=VALUE`` flags give, the last one of a key winning."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise refused("--option", f"expected KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def refuse_unknown_options(platform: str, given: Mapping[str, Mapping[str, Any]]) -> None:
    """A ``Refused`` naming the flag (``--option``, ``--options-json``) that gave an option key
    ``platform``'s client does not read: it would be stored and ignored."""
    for flag, options_given in given.items():
        problem = unknown_option(platform, options_given)
        if problem is not None:
            raise refused(flag, problem)


def replacement_secrets(
    platform: str,
    given: dict[str, str | None],
    private_key_file: Path | None,
    *,
    prompt: bool,
) -> dict[str, str]:
    """The secrets ``lms update`` replaces: those given, or the platform's own one prompted for."""
    if private_key_file:
        given["private_key_pem"] = read_key(private_key_file)
    chosen = {name: value for name, value in given.items() if value is not None}
    needed = REQUIRED_SECRET.get(platform)
    if prompt and needed is not None and needed[0] not in chosen:
        field, label = needed
        option = SECRET_INPUTS[field][0]
        check_secrets_used(platform, Credentials(**chosen))  # before the secret is typed
        if field == "private_key_pem":
            raise ConfigurationError(f"the {label} is read from a file: pass {option}")
        if not sys.stdin.isatty():
            raise ConfigurationError(f"--prompt-secret needs a terminal; or pass {option}")
        chosen[field] = typer.prompt(f"new {label}", hide_input=True).strip()
    return chosen
