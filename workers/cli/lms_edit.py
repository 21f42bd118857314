"""``toolbox lms update | disable | enable``: change an integration after ``add``.

There is no ``remove``: deleting would drop the courses, user links and
grades still owed; ``disable`` stops an integration for good just as well.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from lms.edit import IntegrationChanges, set_active, update_integration
from lms.status import resolve_id
from lms.store import get_integration
from workers.cli.flags import flags_named
from workers.cli.lms_input import (
    ApiKey,
    ApiVersion,
    AuthEndpoint,
    ClientId,
    ClientSecret,
    JsonFlag,
    OptionPairs,
    OptionsJson,
    PrivateKeyFile,
    RefreshToken,
    TokenEndpoint,
    hours,
    json_options,
    pair_options,
    refuse_unknown_options,
    replacement_secrets,
)
from workers.db import get_engine
from workers.embedded import resolve_servers
from workers.secrets import secret_box

IntegrationId = Annotated[str, typer.Argument(metavar="ID", help="Integration id (or prefix)")]


def update(
    integration: IntegrationId,
    institution: Annotated[str | None, typer.Option(help="School or district name")] = None,
    base_url: Annotated[str | None, typer.Option(help="The LMS's address")] = None,
    client_id: ClientId = None,
    api_key: ApiKey = None,
    client_secret: ClientSecret = None,
    refresh_token: RefreshToken = None,
    private_key_file: PrivateKeyFile = None,
    prompt_secret: Annotated[
        bool,
        typer.Option(
            "--prompt-secret", help="Ask for the platform's new secret (hidden) in the terminal"
        ),
    ] = False,
    token_endpoint: TokenEndpoint = None,
    auth_endpoint: AuthEndpoint = None,
    api_version: ApiVersion = None,
    option: OptionPairs = None,
    options_json: OptionsJson = None,
    frequency_hours: Annotated[
        int | None, typer.Option(parser=hours, help="Hours between syncs, 1 to 8760")
    ] = None,
    grade_passback: Annotated[bool | None, typer.Option(help="Send quiz scores back")] = None,
    roster_sync: Annotated[bool | None, typer.Option(help="Sync rosters")] = None,
    content_sync: Annotated[bool | None, typer.Option(help="Sync assignments")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Replace credentials or change settings, checked as `add` checks them.

    Only what is given changes; `--option` sets single platform options,
    `--options-json` replaces them all.  Nothing is written when the result
    would be refused.
    """
    replaced_options = json_options(options_json) if options_json else None  # no server needed
    extra_options = pair_options(option)
    resolve_servers()
    with Session(get_engine()) as session, session.begin():
        integration_id = resolve_id(session.connection(), integration)
        platform = get_integration(session, integration_id).platform_name
        given_options = {"--options-json": replaced_options or {}, "--option": extra_options}
        refuse_unknown_options(platform, given_options)
        given = {"api_key": api_key, "client_secret": client_secret,
                 "refresh_token": refresh_token}  # fmt: skip
        changes = IntegrationChanges(
            institution_name=institution,
            base_url=base_url.rstrip("/") if base_url else None,
            client_id=client_id,
            secrets=replacement_secrets(
                platform, dict(given), private_key_file, prompt=prompt_secret
            ),
            api_version=api_version,
            auth_endpoint=auth_endpoint,
            token_endpoint=token_endpoint,
            options=replaced_options,
            extra_options=extra_options,
            sync_frequency_hours=frequency_hours,
            grade_passback_enabled=grade_passback,
            roster_sync_enabled=roster_sync,
            content_sync_enabled=content_sync,
        )
        with flags_named():
            changed = update_integration(session, integration_id, changes, secret_box())
    replaced = sorted(changes.secrets)
    shown = {"id": str(integration_id), "platform": platform, "changed": changed,
             "secrets_replaced": replaced}  # fmt: skip
    if as_json:
        typer.echo(json.dumps(shown))
        return
    if not changed:  # exit 0, as `lms enable` of an enabled one
        typer.echo(f"nothing changed: {platform} integration {integration_id} already "
                   "holds every setting given (see toolbox lms update --help)")  # fmt: skip
        return
    typer.echo(f"updated {platform} integration {integration_id} "
               f"(secrets replaced: {', '.join(replaced) or 'none'})")  # fmt: skip


def disable(integration: IntegrationId) -> None:
    """Stop syncing and sending grades; the data and grades owed are kept."""
    _set_active(integration, active=False)


def enable(integration: IntegrationId) -> None:
    """Schedule syncs and send grades again (the grades owed go out with the next drain)."""
    _set_active(integration, active=True)


def _set_active(integration: str, *, active: bool) -> None:
    resolve_servers()
    with Session(get_engine()) as session, session.begin():
        integration_id = resolve_id(session.connection(), integration)
        was = set_active(session, integration_id, active=active)
    word = "enabled" if active else "disabled"
    if was == active:
        typer.echo(f"integration {integration_id} was already {word}")
    elif active:
        typer.echo(f"integration {integration_id} enabled; its next sync is due now or "
                      "on its schedule: toolbox lms status")  # fmt: skip
    else:
        typer.echo(f"integration {integration_id} disabled: no syncs, no grades sent "
                      "(they stay pending); toolbox lms enable to resume")  # fmt: skip
