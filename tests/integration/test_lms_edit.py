"""Changing an integration after ``add``, and the checks ``add`` and ``update`` share."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from lms.base import Credentials
from lms.edit import IntegrationChanges, set_active, update_integration
from lms.passback import PassbackPolicy, claim
from lms.schedule import claim_due, claim_now
from lms.status import integration_detail, list_integrations
from lms.store import (
    ADDRESS_LOCK_NAMESPACE,
    NewIntegration,
    add_integration,
    load_config,
    refuse_duplicate,
)
from lms.sync import run_sync
from models.errors import ToolboxError, ValidationFailed
from tests.integration.lms_support import (
    add_canvas,
    claimed_ids,
    complete_attempt,
    integration_row,
    link_quiz,
    students_of,
    sync,
)
from tests.lms.fakes import Dataset, FakeCanvas
from workers.cli import app
from workers.secrets import secret_box

BASE = "https://canvas.example.edu"
GOOD = NewIntegration("canvas", "Springfield", BASE, Credentials(api_key="t0ken"))
API = "the api key (--api-key or TOOLBOX_LMS_API_KEY) is blank"
SECRET = "the client secret (--client-secret or TOOLBOX_LMS_CLIENT_SECRET) is blank"
TOKEN = "the refresh token (--refresh-token or TOOLBOX_LMS_REFRESH_TOKEN) is blank"
KEY = "the private key (--private-key-file or TOOLBOX_LMS_PRIVATE_KEY_FILE) is blank"
UNUSED_TOKEN = (
    "canvas does not use the refresh token (--refresh-token or TOOLBOX_LMS_REFRESH_TOKEN);"
    " it takes the api key (--api-key or TOOLBOX_LMS_API_KEY)"
)
UNUSED_SECRET = (
    "canvas does not use the client secret (--client-secret or TOOLBOX_LMS_CLIENT_SECRET);"
    " it takes the api key (--api-key or TOOLBOX_LMS_API_KEY)"
)
WRONG_ONEROSTER_KEY = Credentials(client_id="c", api_key="S3cret", client_secret="s")
UNUSED_API_KEY = (
    "oneroster does not use the api key (--api-key or TOOLBOX_LMS_API_KEY); it takes the"
    " client secret (--client-secret or TOOLBOX_LMS_CLIENT_SECRET)"
)


def _update(engine: Engine, integration: uuid.UUID, **changes: Any) -> None:
    with Session(engine) as session, session.begin():
        update_integration(session, integration, IntegrationChanges(**changes), secret_box())


def _add(engine: Engine, new: NewIntegration) -> uuid.UUID:
    with Session(engine) as session, session.begin():
        integration_id: uuid.UUID = add_integration(session, new, secret_box()).id
    return integration_id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sync_frequency_hours": 100_000_000}, "sync frequency must be 1 to 8760 hours"),
        ({"sync_frequency_hours": 99_999_999_999}, "sync frequency must be 1 to 8760 hours"),
        ({"sync_frequency_hours": 0}, "sync frequency must be 1 to 8760 hours"),
        ({"token_endpoint": "not a url"}, "token endpoint must be an http(s) URL"),
        ({"auth_endpoint": "ftp://idp.example.edu/auth"}, "auth endpoint must be an http(s) URL"),
        ({"base_url": "http://admin:S3cret@canvas.example.edu"}, "credentials go in the secret"),
        ({"token_endpoint": "https://u:S3cret@idp.example.edu/t"}, "credentials go in the secret"),
        ({"credentials": Credentials(api_key="   ")}, API),
        ({"credentials": Credentials(api_key="t", client_secret=" ")}, SECRET),
        ({"credentials": Credentials(api_key="t", refresh_token="\n")}, TOKEN),
        ({"credentials": Credentials(api_key="t", private_key_pem=" \n")}, KEY),
        ({"credentials": Credentials(api_key="t", refresh_token="r")}, UNUSED_TOKEN),
        ({"credentials": Credentials(api_key="t", client_secret="S3cret")}, UNUSED_SECRET),
        ({"platform": "oneroster", "credentials": WRONG_ONEROSTER_KEY}, UNUSED_API_KEY),
        ({"base_url": BASE + "/?x=1"}, "base URL must not hold a query string or fragment"),
        ({"base_url": BASE + "?"}, "base URL must not hold a query string or fragment"),
        ({"base_url": BASE + "#top"}, "base URL must not hold a query string or fragment"),
        ({"token_endpoint": BASE + "/t?k=S3cret"}, "token endpoint must not hold a query string"),
        ({"auth_endpoint": BASE + "/a#x"}, "auth endpoint must not hold a query string"),
        ({"base_url": BASE + "/" + "x" * 500}, "base URL is 527 characters long; at most 500"),
        ({"institution_name": "x" * 201}, "institution name (--institution) is 201 characters"),
        ({"institution_name": "Spring\tfield"}, "found U+0009 at character 7"),
        ({"institution_name": "Spring\nfield"}, "must be one line without control characters"),
        ({"institution_name": "Spring\x1b[31m"}, "found U+001B at character 7"),
        ({"institution_name": "Spring\u2028field"}, "found U+2028 at character 7"),
    ],
)
def test_add_refuses_what_would_fail_only_at_sync_time(
    engine: Engine, toolbox_env: dict[str, str], change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        _add(engine, dataclasses.replace(GOOD, **change))
    assert message in refused.value.message and "S3cret" not in refused.value.message
    with engine.connect() as connection:
        assert list_integrations(connection) == []


def test_an_update_refuses_a_secret_the_platform_never_reads_but_keeps_one_stored_before(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """Stored encrypted and never used, a wrong secret hid the one the platform needs."""
    integration = _add(engine, GOOD)
    with pytest.raises(ValidationFailed) as refused:
        _update(engine, integration, secrets={"refresh_token": "r3fresh"})
    assert refused.value.message == UNUSED_TOKEN
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT refresh_token_encrypted FROM lms_integrations WHERE id = :id"),
            {"id": integration},
        ).scalar_one()
    assert stored is None, "nothing written"

    with engine.begin() as connection:  # as an older version stored it, unchecked
        connection.execute(
            text("UPDATE lms_integrations SET refresh_token_encrypted = :t WHERE id = :id"),
            {"t": secret_box().encrypt("r3fresh"), "id": integration},
        )
    _update(engine, integration, institution_name="Shelbyville")  # the stored one is kept
    with Session(engine) as session:
        config = load_config(session, integration, secret_box())
    assert config.credentials.refresh_token == "r3fresh"
    with engine.connect() as connection:
        assert integration_detail(connection, integration).summary.institution == "Shelbyville"


def test_the_lti_service_urls_in_the_options_are_checked_as_the_endpoints_are(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """An LTI context's NRPS and AGS URLs get the token: refused by add and update alike."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    context = {"id": "ctx-1", "memberships_url": f"{BASE}/m", "lineitems_url": f"{BASE}/li"}
    lti = NewIntegration(
        "lti", "Ogdenville", BASE, Credentials(client_id="tool", private_key_pem=pem),
        token_endpoint=f"{BASE}/token", options={"contexts": [context]},
    )  # fmt: skip
    name = "options.contexts[0].memberships_url"
    for url, message in [
        ("https://u:S3cret@lms.example.edu/m", f"{name} must not hold a user name or password; "
                                               "credentials go in the secret options"),
        ("ftp://lms.example.edu/m", f"{name} must be an http(s) URL with a host, got 'ftp://"),
        (" ", f"{name} must be an http(s) URL with a host, got ' '"),
        (f"{BASE}/m#S3cret", f"{name} must not hold a fragment (#...); give the address alone"),
    ]:  # fmt: skip
        bad = {"contexts": [{**context, "memberships_url": url}]}
        with pytest.raises(ValidationFailed) as refused:
            _add(engine, dataclasses.replace(lti, options=bad))
        assert refused.value.message.startswith(message) and "S3cret" not in refused.value.message
    with engine.connect() as connection:
        assert list_integrations(connection) == []

    # a platform may hand over a service URL with a query (Moodle: lineitems?type_id=2)
    with_query = {**context, "lineitems_url": f"{BASE}/li?type_id=2"}
    integration = _add(engine, dataclasses.replace(lti, options={"contexts": [with_query]}))
    with Session(engine) as session:
        (stored,) = load_config(session, integration, secret_box()).options["contexts"]
    assert stored["lineitems_url"] == f"{BASE}/li?type_id=2"
    _update(engine, integration, options={"contexts": [context]})
    before = integration_row(engine, integration)
    second = {"id": "ctx-2", "lineitems_url": "https://admin:S3cret@lms.example.edu/li"}
    with pytest.raises(ValidationFailed, match=r"^options\.contexts\[1\]\.lineitems_url must not"):
        _update(engine, integration, options={"contexts": [context, second]})
    assert integration_row(engine, integration) == before, "nothing written when refused"


def test_an_option_key_the_client_does_not_read_is_refused_by_add_and_update(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """A typo (``acount_id``) was stored and then ignored by every sync."""
    typo = "unknown option 'acount_id' for canvas; did you mean 'account_id'? (known: account_id"
    with pytest.raises(ValidationFailed, match=re.escape(typo)):
        _add(engine, dataclasses.replace(GOOD, options={"acount_id": "1"}))
    with engine.connect() as connection:
        assert list_integrations(connection) == []

    integration = _add(engine, dataclasses.replace(GOOD, options={"account_id": "1"}))
    before = integration_row(engine, integration)
    for changes in ({"extra_options": {"acount_id": "2"}}, {"options": {"acount_id": "2"}}):
        with pytest.raises(ValidationFailed, match=re.escape(typo)):
            _update(engine, integration, **changes)
        assert integration_row(engine, integration) == before, "nothing written when refused"


def test_an_unknown_key_an_older_version_stored_is_kept_until_the_options_are_replaced(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    integration = _add(engine, GOOD)
    with engine.begin() as connection:
        connection.execute(text("""UPDATE lms_integrations SET options = '{"acount_id": "1"}'"""))
    _update(engine, integration, extra_options={"account_id": "1"})  # the stray key: not refused
    assert integration_row(engine, integration).options == {"acount_id": "1", "account_id": "1"}
    with pytest.raises(ValidationFailed, match="unknown option 'acount_id' for canvas"):
        _update(engine, integration, options={"acount_id": "1"})  # given again: refused
    _update(engine, integration, options={"account_id": "1"})
    assert integration_row(engine, integration).options == {"account_id": "1"}


def test_cli_update_names_the_flag_that_gave_an_unknown_key(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    integration = _add(engine, GOOD)
    before = integration_row(engine, integration)
    runner = CliRunner()
    for flag, value in (("--option", "acount_id=1"), ("--options-json", '{"acount_id": 1}')):
        result = runner.invoke(app, ["lms", "update", str(integration), flag, value])
        assert (result.exit_code, result.stdout) == (2, ""), result.output
        assert result.stderr == (
            f"error: toolbox lms update: {flag}: unknown option 'acount_id' for canvas; did you"
            " mean 'account_id'? (known: account_id, throttle_threshold)\n"
        )
    assert integration_row(engine, integration) == before


def test_secrets_are_stripped_and_a_year_is_the_longest_frequency(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    padded = Credentials(api_key="  t0ken\n", client_id=" app ")
    integration = _add(engine, dataclasses.replace(GOOD, credentials=padded,
                                                   sync_frequency_hours=8760))  # fmt: skip
    with Session(engine) as session:
        config = load_config(session, integration, secret_box())
    assert (config.credentials.api_key, config.credentials.client_id) == ("t0ken", "app")
    with engine.connect() as connection:
        (listed,) = list_integrations(connection)
    assert listed.sync_frequency_hours == 8760 and listed.next_sync_at is not None


def test_a_frequency_written_before_the_cap_does_not_break_the_listing(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """``--frequency-hours 100000000`` made ``lms list`` fail for every integration."""
    huge, fine = _add(engine, GOOD), _add(engine, dataclasses.replace(GOOD, base_url=BASE + "/x"))
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE lms_integrations SET sync_frequency_hours = 100000000,"
                 " last_sync_at = now(), last_sync_status = 'success' WHERE id = :id"),
            {"id": huge},
        )  # fmt: skip
        assert {s.id for s in list_integrations(connection)} == {huge, fine}
        assert integration_detail(connection, huge).summary.next_sync_at is not None
        assert claimed_ids(claim_due(connection)) == [fine]


def test_update_replaces_credentials_and_settings_checked_as_add_checks_them(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    with FakeCanvas(Dataset.generate(courses=1, students_per_course=2)) as canvas:
        integration = add_canvas(engine, canvas.base_url, "expired-token")
        assert sync(engine, integration).status == "failed"
        before = integration_row(engine, integration)

        for bad in ({"base_url": "not a url"}, {"sync_frequency_hours": 100_000_000},
                    {"token_endpoint": "nope"}, {"secrets": {"api_key": "  "}},
                    {"institution_name": " "}):  # fmt: skip
            with pytest.raises(ValidationFailed):
                _update(engine, integration, **bad)
        assert integration_row(engine, integration) == before, "nothing written when refused"

        _update(engine, integration, secrets={"api_key": canvas.token}, sync_frequency_hours=48,
                roster_sync_enabled=False, institution_name="Springfield Elementary")  # fmt: skip
        row = integration_row(engine, integration)
        assert (row.sync_frequency_hours, row.roster_sync_enabled) == (48, False)
        assert row.institution_name == "Springfield Elementary" and row.grade_passback_enabled
        assert secret_box().is_current(row.api_key_encrypted)
        with Session(engine) as session:
            assert load_config(session, integration, secret_box()).credentials.api_key == (
                canvas.token
            )
        assert sync(engine, integration).status == "success"


def test_an_empty_secret_is_refused_and_an_update_changing_nothing_writes_nothing(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """``update --api-key ""`` said "secrets replaced: api_key" and kept the old one."""
    integration = _add(engine, GOOD)
    before = integration_row(engine, integration)
    for empty in ("", "  "):
        with pytest.raises(ValidationFailed, match=f"^{re.escape(API)}$"):
            _update(engine, integration, secrets={"api_key": empty})
    assert integration_row(engine, integration) == before
    with Session(engine) as session, session.begin():
        box = secret_box()
        assert not update_integration(session, integration, IntegrationChanges(), box)
        same = IntegrationChanges(institution_name="Springfield", base_url=BASE,
                                  sync_frequency_hours=24, grade_passback_enabled=True)  # fmt: skip
        assert not update_integration(session, integration, same, box)
        assert update_integration(session, integration, IntegrationChanges(api_version="v2"), box)
    assert integration_row(engine, integration).api_version == "v2"


def test_cli_update_says_when_nothing_changed_and_refuses_an_empty_secret(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    integration = _add(engine, GOOD)
    runner = CliRunner()
    unchanged = runner.invoke(app, ["lms", "update", str(integration)[:8]], env={})
    assert unchanged.exit_code == 0, unchanged.output
    assert unchanged.output.startswith(f"nothing changed: canvas integration {integration} ")
    assert "updated" not in unchanged.output and "replaced" not in unchanged.output
    empty = runner.invoke(app, ["lms", "update", str(integration), "--api-key", ""])
    assert empty.exit_code == 2  # the refusal's one line, in the command line's words
    assert empty.output.strip() == f"error: {API}"
    changed = runner.invoke(app, ["lms", "update", str(integration), "--api-key", "n3w"])
    assert changed.exit_code == 0 and "secrets replaced: api_key" in changed.output
    with Session(engine) as session:
        assert load_config(session, integration, secret_box()).credentials.api_key == "n3w"


def test_the_same_lms_twice_is_refused_naming_the_integration_to_update(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    first = _add(engine, GOOD)
    other = _add(engine, dataclasses.replace(GOOD, base_url="https://other.example.edu"))
    with Session(engine) as session, pytest.raises(ValidationFailed) as refused:
        refuse_duplicate(session, "canvas", "HTTPS://Canvas.Example.edu:443/")
    assert str(first) in refused.value.message and "toolbox lms update" in refused.value.message
    with Session(engine) as session:
        refuse_duplicate(session, "moodle", BASE)  # another platform at that address is fine
        refuse_duplicate(session, "canvas", BASE, other_than=first)
    with pytest.raises(ValidationFailed, match=str(first)):
        _update(engine, other, base_url=BASE + "/")


def test_an_address_is_compared_as_dns_resolves_it(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """An IDNA host in either form, and one trailing dot, name the same LMS."""
    first = _add(engine, GOOD)
    books = _add(engine, dataclasses.replace(GOOD, base_url="https://bücher.example"))
    for url, existing in [(BASE + ".", first), ("https://CANVAS.example.edu./", first),
                          ("https://xn--bcher-kva.example/", books),
                          ("https://BÜCHER.example.", books)]:  # fmt: skip
        with pytest.raises(ValidationFailed, match=f"is already integration {existing}"):
            _add(engine, dataclasses.replace(GOOD, base_url=url))
    with pytest.raises(ValidationFailed, match=f"is already integration {books}"):
        _update(engine, first, base_url="https://xn--bcher-kva.example")
    # IDNA 2008, as httpx connects: straße is not strasse (Python's IDNA 2003 codec merged them)
    _add(engine, dataclasses.replace(GOOD, base_url="https://straße.example"))
    _add(engine, dataclasses.replace(GOOD, base_url="https://strasse.example"))
    with pytest.raises(ValidationFailed, match=r"^base URL: Invalid IDNA hostname: 'a\.\.ü"):
        _add(engine, dataclasses.replace(GOOD, base_url="https://a..ü.example"))  # no traceback


def test_a_service_adding_the_same_lms_twice_is_refused_and_syncs_no_student_twice(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """``add_integration`` itself refuses (it was the CLI's check only): no second row."""
    with FakeCanvas(Dataset.generate(courses=2, students_per_course=3)) as canvas:
        first = add_canvas(engine, canvas.base_url, canvas.token)
        assert sync(engine, first).status == "success"
        users = _count(engine, "users")
        with pytest.raises(ValidationFailed) as refused:
            add_canvas(engine, canvas.base_url.upper() + "/", canvas.token)
        assert refused.value.message == (
            f"canvas at {canvas.base_url.upper()}/ is already integration {first}; "
            f"change it with `toolbox lms update {first}`"
        )
        _set_active(engine, first, active=False, was=True)
        with pytest.raises(ValidationFailed, match=f"it is disabled: `toolbox lms enable {first}`"):
            add_canvas(engine, canvas.base_url, canvas.token)
    assert (_count(engine, "lms_integrations"), _count(engine, "users")) == (1, users) == (1, 8)


@pytest.mark.parametrize("second", ["add", "update"])
def test_two_writers_of_one_lms_address_at_once_leave_one_integration_there(
    engine: Engine, toolbox_env: dict[str, str], second: str
) -> None:
    """The second waits for the first's commit (an advisory lock on the address), then sees it.

    ``second`` adds the LMS again, or moves another integration to its address.
    """
    other = _add(engine, dataclasses.replace(GOOD, base_url="https://other.example.edu"))
    before = integration_row(engine, other)
    outcome: list[Exception | None] = []
    first = Session(engine)
    with first.begin():
        added = add_integration(first, GOOD, secret_box()).id  # not committed yet
        writer = threading.Thread(target=lambda: outcome.append(_write(engine, second, other)))
        writer.start()
        deadline = time.monotonic() + 10
        while writer.is_alive() and not _waiting_for_a_lock(engine):
            assert time.monotonic() < deadline, "the second writer neither finished nor waited"
            time.sleep(0.01)
    first.close()
    writer.join(10)
    (refused,) = outcome
    assert isinstance(refused, ValidationFailed), "two integrations of one LMS"
    assert refused.message == (
        f"canvas at https://CANVAS.example.edu:443 is already integration {added}; "
        f"change it with `toolbox lms update {added}`"
    )
    assert _count(engine, "lms_integrations") == 2 and integration_row(engine, other) == before


def _write(engine: Engine, what: str, other: uuid.UUID) -> Exception | None:
    address = "https://CANVAS.example.edu:443"
    try:
        if what == "add":
            _add(engine, dataclasses.replace(GOOD, base_url=address))
        else:
            _update(engine, other, base_url=address, sync_frequency_hours=2)
    except ValidationFailed as exc:
        return exc
    return None


def _waiting_for_a_lock(engine: Engine) -> bool:
    """Someone waits for the address lock in this test's database."""
    with engine.connect() as connection:
        return bool(connection.execute(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND classid = CAST(:namespace AS oid) AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())"
        ), {"namespace": ADDRESS_LOCK_NAMESPACE}).scalar_one())  # fmt: skip


def test_a_pair_written_before_the_refusal_can_be_updated_but_only_one_enabled(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """Older versions let a service add one LMS twice: ``disable`` one, keep updating both."""
    first = _add(engine, GOOD)
    copy = _copy_row(engine, first, base_url=BASE + "/")
    _update(engine, copy, sync_frequency_hours=12)  # its own address: no refusal
    _update(engine, first, institution_name="Springfield Elementary")
    assert integration_row(engine, copy).sync_frequency_hours == 12

    _set_active(engine, copy, active=False, was=True)
    with pytest.raises(ValidationFailed) as refused:
        _set_active(engine, copy, active=True, was=False)
    assert refused.value.message == (
        f"canvas at {BASE}/ is already integration {first}, enabled: both would sync every "
        f"student; `toolbox lms disable {first}` first to switch to this one"
    )
    assert not integration_row(engine, copy).is_active
    _set_active(engine, first, active=False, was=True)
    _set_active(engine, copy, active=True, was=False)


def test_an_address_stored_before_the_url_checks_does_not_stop_adding_others(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    old = _add(engine, dataclasses.replace(GOOD, base_url="https://old.example.edu"))
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE lms_integrations SET base_url = 'https://old.example.edu:port/'")
        )
    added = _add(engine, GOOD)  # compared with the old address as written, not a ValueError
    with engine.connect() as connection:
        assert {s.id for s in list_integrations(connection)} == {old, added}


def _copy_row(engine: Engine, integration: uuid.UUID, **changes: str) -> uuid.UUID:
    """A second row as an older version wrote it, past today's checks."""
    with engine.begin() as connection:
        row = connection.execute(
            text("SELECT * FROM lms_integrations WHERE id = :id"), {"id": integration}
        ).mappings().one()  # fmt: skip
        values = {**row, "id": uuid.uuid4(), **changes}
        columns = ", ".join(values)
        connection.execute(
            text(f"INSERT INTO lms_integrations ({columns}) VALUES "
                 f"({', '.join(':' + name for name in values)})"),
            {name: json.dumps(value) if name == "options" else value
             for name, value in values.items()},
        )  # fmt: skip
    copied: uuid.UUID = values["id"]
    return copied


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_disabled_integration_is_never_scheduled_synced_or_drained(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    data = Dataset.generate(courses=1, students_per_course=2, assignments_per_course=1)
    course = next(iter(data.courses))
    with FakeCanvas(data) as canvas:
        integration = add_canvas(engine, canvas.base_url, canvas.token)
        assert sync(engine, integration).status == "success"
        quiz = link_quiz(engine, [data.course_assignments(course)[0].id])
        (student, _), *_ = students_of(engine, course)
        _, (grade,) = complete_attempt(engine, quiz, student, Decimal(90))
        with engine.begin() as connection:  # due for a sync again
            connection.execute(
                text("UPDATE lms_integrations SET last_sync_at = now() - interval '2 days'"
                     " WHERE id = :id"), {"id": integration},
            )  # fmt: skip

        _set_active(engine, integration, active=False, was=True)
        with engine.begin() as connection:
            assert claim_due(connection) == []
            assert "disabled" in (claim_now(connection, integration).reason or "")
            assert claim(connection, PassbackPolicy()) == []
        with engine.connect() as connection:
            shown = integration_detail(connection, integration)
        assert not shown.summary.is_active and shown.summary.next_sync_at is None
        assert shown.summary.passbacks["pending"] == 1, "the grade waits, unsent"

        _set_active(engine, integration, active=True, was=False)
        with engine.begin() as connection:
            (claimed,) = claim_due(connection)
        assert claimed.integration_id == integration
        _set_active(engine, integration, active=False, was=True)  # before a worker took it
        skipped = run_sync(engine, integration, secrets=secret_box, run_id=claimed.run_id)
        assert (skipped.status, skipped.message) == ("skipped", "the integration is disabled")

        _set_active(engine, integration, active=True, was=False)
        with engine.begin() as connection:
            assert [g.id for g in claim(connection, PassbackPolicy())] == [grade]


def test_a_sync_skipped_because_its_integration_was_disabled_ends_its_claim(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """A claim the skipped run left ``running`` had no run behind it: `lms list` and `lms
    status` said "sync running" of a disabled integration for ever, and after `enable`,
    `lms sync` claimed to take over "a sync waiting to retry"."""
    with FakeCanvas(Dataset.generate(courses=1, students_per_course=1)) as canvas:
        integration = add_canvas(engine, canvas.base_url, canvas.token)
        with engine.begin() as connection:
            (claimed,) = claim_due(connection)
        _set_active(engine, integration, active=False, was=True)  # before a worker took it
        skipped = run_sync(engine, integration, secrets=secret_box, run_id=claimed.run_id)
        assert canvas.requests == [], "a disabled integration's LMS is not called"
    assert (skipped.status, skipped.message) == ("skipped", "the integration is disabled")
    row = integration_row(engine, integration)
    assert (row.last_sync_status, row.sync_error_message) == (
        "failed",
        "not run: the integration is disabled",
    )
    with engine.connect() as connection:
        assert integration_detail(connection, integration).summary.sync_run_id is None

    _set_active(engine, integration, active=True, was=False)
    with engine.begin() as connection:
        taken = claim_now(connection, integration)
    assert taken.claimed and not taken.took_over_retry


def _set_active(engine: Engine, integration: uuid.UUID, *, active: bool, was: bool) -> None:
    with Session(engine) as session, session.begin():
        assert set_active(session, integration, active=active) is was


def test_update_of_a_missing_integration_says_so(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    with pytest.raises(ToolboxError, match="no LMS integration"):
        _update(engine, uuid.uuid4(), sync_frequency_hours=2)


@pytest.mark.parametrize(
    ("column", "stored", "flag"),
    [
        ("base_url", BASE + "/?per_page=10", "--base-url"),
        ("token_endpoint", BASE + "/token?k=S3cret", "--token-endpoint"),
        ("auth_endpoint", BASE + "/auth#x", "--auth-endpoint"),
    ],
)
def test_an_address_stored_by_an_older_version_is_named_with_the_flag_that_replaces_it(
    engine: Engine, toolbox_env: dict[str, str], column: str, stored: str, flag: str
) -> None:
    """Every update of the row was refused as if the operator had typed the bad address."""
    integration = _add(engine, GOOD)
    with engine.begin() as connection:  # past today's checks, as an older version took it
        connection.execute(text(f"UPDATE lms_integrations SET {column} = :url"), {"url": stored})
    with pytest.raises(ValidationFailed) as refused:
        _update(engine, integration, sync_frequency_hours=6)
    name = column.replace("_url", " URL").replace("_", " ")
    assert refused.value.message.startswith(f"the stored {name} must not hold a ")
    assert refused.value.message.endswith(f"(an older version took it); replace it with {flag}")
    assert "S3cret" not in refused.value.message
    fixed = BASE if column == "base_url" else f"{BASE}/{column}"
    _update(engine, integration, sync_frequency_hours=6, **{column: fixed})
    with engine.connect() as connection:
        row = connection.execute(
            text(f"SELECT {column}, sync_frequency_hours FROM lms_integrations")
        ).one()  # fmt: skip
    assert tuple(row) == (fixed, 6)
