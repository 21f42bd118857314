"""``toolbox lms update | disable | enable | assignments | link | unlink``: after ``add``.

There is no ``remove``: deleting would drop the courses, user links and
grades still owed; ``disable`` stops an integration for good just as well.
``link`` names the quiz whose scores an LMS assignment takes (``lms.links``):
without a link, grade passback has nothing to send.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from lms.edit import IntegrationChanges, set_active, update_integration
from lms.links import (
    AssignmentLink,
    LinkChange,
    assignment_links,
    link_assignment,
    unlink_assignment,
)
from lms.status import resolve_id
from lms.store import get_integration
from models.errors import ValidationFailed, quoted
from models.ids import resolve_id as resolve_prefix
from workers.cli.consoles import console as make_console
from workers.cli.flags import flag_named, flags_named
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
from workers.cli.lookup import warn
from workers.db import get_engine
from workers.embedded import resolve_servers
from workers.secrets import secret_box

console = make_console()
IntegrationId = Annotated[str, typer.Argument(metavar="ID", help="Integration id (or prefix)")]
AssignmentId = Annotated[
    str, typer.Option("--assignment", help="The LMS's id of the assignment (lms assignments)")
]
CourseId = Annotated[
    str | None,
    typer.Option("--course", help="The LMS's id of its course, when several hold the id"),
]
LINK_FLAGS = {"course_external_id": "--course", "external_assignment_id": "--assignment"}
"""The Python API's fields of ``lms.links`` and the flags that give them."""


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


def assignments(
    integration: IntegrationId,
    course: Annotated[str | None, typer.Option("--course", help="One course (its LMS id)")] = None,
    linked: Annotated[bool, typer.Option("--linked", help="Only those linked to a quiz")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The assignments a sync read, and the quiz each takes scores from."""
    resolve_servers()
    with get_engine().connect() as connection:
        integration_id = resolve_id(connection, integration)
        found = assignment_links(
            connection, integration_id, course_external_id=course, linked_only=linked
        )
    if as_json:
        typer.echo(json.dumps([link.as_dict() for link in found], indent=2))
        return
    if not found:
        what = "linked assignments" if linked else "assignments"
        where = f" course {quoted(course)} of" if course is not None else ""
        typer.echo(f"no {what} in{where} integration {integration_id}; a sync reads them "
                   "from the LMS")  # fmt: skip
        return
    table = Table(box=box.SIMPLE)
    for column in ("course", "assignment", "title", "quiz", "note"):
        table.add_column(column, no_wrap=column in ("course", "assignment"))
    for link in found:
        quiz = f"{str(link.quiz_id)[:8]} {link.quiz_title}" if link.quiz_id else "-"
        table.add_row(escape(link.course_external_id), escape(link.external_id),
                      escape(link.title), escape(quiz), _note(link))  # fmt: skip
    console.print(table)
    console.print("link one: toolbox lms link ID --assignment ASSIGNMENT --quiz QUIZ")


def link(
    integration: IntegrationId,
    assignment: AssignmentId,
    quiz: Annotated[str, typer.Option("--quiz", help="Quiz id (or a prefix of 4+ characters)")],
    course: CourseId = None,
    as_json: JsonFlag = False,
) -> None:
    """Send a quiz's scores to an LMS assignment: attempts completed from now on.

    Linking again to the same quiz changes nothing; another quiz replaces the
    link.  Attempts completed before it are not sent (the output counts them).
    """

    def change(connection: Connection, integration_id: uuid.UUID) -> LinkChange:
        quiz_id = resolve_prefix(connection, quiz, table="quizzes", noun="quiz")
        return link_assignment(
            connection, integration_id, assignment, quiz_id, course_external_id=course
        )

    shown = _changed(integration, change)
    if as_json:
        typer.echo(json.dumps(shown.as_dict()))
    else:
        _say_linked(shown)
    if not shown.passback_enabled:
        warn(_passback_off(shown))


def unlink(
    integration: IntegrationId,
    assignment: AssignmentId,
    course: CourseId = None,
    as_json: JsonFlag = False,
) -> None:
    """Send no further quiz scores to an LMS assignment.

    The grades recorded for it already are still sent.
    """

    def change(connection: Connection, integration_id: uuid.UUID) -> LinkChange:
        return unlink_assignment(connection, integration_id, assignment, course_external_id=course)

    shown = _changed(integration, change)
    if as_json:
        typer.echo(json.dumps(shown.as_dict()))
        return
    named = _named(shown.assignment)
    if not shown.changed:
        typer.echo(f"{named} was linked to no quiz; nothing changed")
        return
    typer.echo(f"unlinked {named} from quiz {shown.previous_quiz_id}: no further grades are "
               "written for it")  # fmt: skip
    if shown.pending_grades:
        typer.echo(f"{shown.pending_grades} grade(s) recorded for it before are still sent")


def _changed(integration: str, change: Callable[[Connection, uuid.UUID], LinkChange]) -> LinkChange:
    """``change`` in one transaction; a refusal naming a field named by its flag instead."""
    resolve_servers()
    with get_engine().begin() as connection:
        integration_id = resolve_id(connection, integration)
        try:
            return change(connection, integration_id)
        except ValidationFailed as exc:
            raise flag_named(exc, LINK_FLAGS) from None


def _say_linked(shown: LinkChange) -> None:
    now = shown.assignment
    quiz = f"quiz {now.quiz_id} ({quoted(now.quiz_title or '')})"
    if not shown.changed:
        typer.echo(f"{_named(now)} was already linked to {quiz}; nothing changed")
    else:
        typer.echo(f"linked {_named(now)} to {quiz}: the scores of attempts completed from "
                   "now on are sent to it")  # fmt: skip
    if shown.changed and shown.previous_quiz_id is not None:
        owed = (f"; the {shown.pending_grades} grade(s) recorded for it before are still sent"
                if shown.pending_grades else "")  # fmt: skip
        typer.echo(f"it was linked to quiz {shown.previous_quiz_id}{owed}")
    if shown.unsent_attempts:
        typer.echo(f"{shown.unsent_attempts} attempt(s) at the quiz completed before the link "
                   "by students of the course are not sent")  # fmt: skip


def _named(link: AssignmentLink) -> str:
    return (f"assignment {quoted(link.external_id)} ({quoted(link.title)}) of course "
            f"{quoted(link.course_external_id)}")  # fmt: skip


def _note(link: AssignmentLink) -> str:
    """Why a linked assignment gets no grade, if it gets none."""
    if link.deleted:
        return "no longer in the LMS: no grade"
    if not link.grade_passback_enabled:
        return "passback off for it: no grade"
    return ""


def _passback_off(shown: LinkChange) -> str:
    """Why the linked assignment gets no grade for now, and what turns it on."""
    integration = shown.integration_id
    if not shown.assignment.grade_passback_enabled:
        return "grade passback is off for this assignment: no grade is written for it"
    return (f"grade passback is off for integration {integration}: no grade is sent until "
            f"toolbox lms update {integration} --grade-passback")  # fmt: skip
