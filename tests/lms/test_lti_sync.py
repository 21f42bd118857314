"""An LTI integration synced against the fake platform and a real PostgreSQL.

A platform sends the NRPS claim, and the AGS claim, only where it offers that
service ("This claim is included in LTI messages if any of the Assignment and
Grade Services are accessible by the tool in the context", AGS 2.0): a context
may have a ``memberships_url`` and no ``lineitems_url``, or the reverse.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from lms.base import Credentials
from lms.store import NewIntegration, add_integration
from models.errors import ConfigurationError
from tests.integration.lms_support import sync
from tests.lms.fakes import Dataset
from tests.lms.fakes.lti import FakeLTIPlatform
from tests.lms.test_lti import pem
from tests.lms.test_sync_outcomes import live_rows
from workers.secrets import secret_box


@pytest.fixture(scope="module")
def tool_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def platform(tool_key: rsa.RSAPrivateKey) -> Iterator[FakeLTIPlatform]:
    data = Dataset.generate(courses=2, students_per_course=3, assignments_per_course=2)
    with FakeLTIPlatform(data, tool_public_key=tool_key.public_key()) as server:
        yield server


def add_lti(
    engine: Engine,
    platform: FakeLTIPlatform,
    key: rsa.RSAPrivateKey,
    contexts: list[dict[str, str]],
) -> uuid.UUID:
    new = NewIntegration(
        "lti",
        "Ogdenville",
        platform.base_url,
        Credentials(client_id=platform.client_id, private_key_pem=pem(key)),
        token_endpoint=platform.token_url,
        options={"contexts": contexts, "key_id": "tool-key-1"},
    )
    with Session(engine) as session, session.begin():
        integration_id: uuid.UUID = add_integration(session, new, secret_box()).id
    return integration_id


def test_a_context_with_one_service_syncs_what_it_offers(
    engine: Engine,
    toolbox_env: dict[str, str],
    platform: FakeLTIPlatform,
    tool_key: rsa.RSAPrivateKey,
) -> None:
    """Each course failed, ``options.contexts['1001'].lineitems_url is not configured``,
    and nothing of it was stored, its roster included, at every sync."""
    roster_only, grades_only = platform.context_options()
    del roster_only["lineitems_url"], grades_only["memberships_url"]
    integration = add_lti(engine, platform, tool_key, [roster_only, grades_only])

    report = sync(engine, integration)

    assert report.status == "success" and report.errors == []
    assert live_rows(engine, roster_only["id"]) == (0, 4)  # a teacher and 3 students
    assert live_rows(engine, grades_only["id"]) == (2, 0)
    assert not platform.requests_to(f"/lti/contexts/{roster_only['id']}/lineitems")
    assert not platform.requests_to(f"/lti/contexts/{grades_only['id']}/memberships")


def test_a_context_with_neither_service_or_given_twice_is_refused_when_added(
    engine: Engine,
    toolbox_env: dict[str, str],
    platform: FakeLTIPlatform,
    tool_key: rsa.RSAPrivateKey,
) -> None:
    first = platform.context_options()[0]
    bare = {"id": "ctx-9", "title": "Nothing offered"}
    with pytest.raises(ConfigurationError, match=r"contexts\[1\] names neither memberships_url"):
        add_lti(engine, platform, tool_key, [first, bare])
    again = {**first, "title": "The same context, with another title"}
    with pytest.raises(ConfigurationError, match=r"contexts\[1\]\.id '1001' is given twice"):
        add_lti(engine, platform, tool_key, [first, again])
