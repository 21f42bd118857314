"""Platform options are read strictly, in the spellings a user may mean, and named when refused.

``--option scopes=URL`` (text, as every ``--option``) was sent to the token
endpoint one character per scope (``scope=h t t p s ...``); ``--options-json
'{"page_size": "abc"}'`` or ``'{"scopes": 5}'`` ended ``lms add`` in a
traceback; ``{"account_id": {"x": [1]}}`` was stored and broke the first sync.
The clients are built here as ``lms add`` builds them (no network).
"""

from __future__ import annotations

from typing import Any

import pytest

from lms.base import ConnectionConfig, Credentials
from lms.registry import make_client
from models.errors import ConfigurationError

ROSTER = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"
KEY = """-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7
-----END PRIVATE KEY-----"""


def config(platform: str, options: dict[str, Any]) -> ConnectionConfig:
    credentials = {
        "canvas": Credentials(api_key="token"),
        "oneroster": Credentials(client_id="c", client_secret="s"),
        "lti": Credentials(client_id="c", private_key_pem=KEY),
        "schoology": Credentials(client_id="c", client_secret="s"),
    }[platform]
    return ConnectionConfig(
        platform,
        "https://lms.example",
        credentials,
        token_endpoint="https://lms.example/oauth/token",
        options=options,
    )


LTI_CONTEXTS = {"contexts": [{"id": "ctx-1", "memberships_url": "https://lms.example.edu/nrps"}]}


def test_option_text_as_the_command_line_stores_it_is_read_as_meant() -> None:
    client: Any = make_client(config("oneroster", {"scopes": ROSTER, "page_size": "50"}))
    with client:
        assert client.tokens.scopes == (ROSTER,)
        assert client.page_size == 50
        form, _ = client.tokens.grant.request_parts(client.tokens.token_url, client.tokens.scopes)
        assert form["scope"] == ROSTER  # not "h t t p s : / / ..."
    spaced: Any = make_client(config("oneroster", {"scopes": f"{ROSTER}  other.scope "}))
    with spaced:
        assert spaced.tokens.scopes == (ROSTER, "other.scope")
    listed: Any = make_client(config("lti", {**LTI_CONTEXTS, "scopes": [ROSTER]}))
    with listed:
        assert listed.tokens.scopes == (ROSTER,)
    canvas: Any = make_client(config("canvas", {"account_id": 7, "throttle_threshold": "0"}))
    with canvas:
        assert canvas.account == "7"
    schoology: Any = make_client(config("schoology", {"user_id": 12345}))
    with schoology:
        assert schoology.user_id == "12345"
        assert (schoology.pacer.limit, schoology.pacer.window) == (50, 5)  # as documented
    paced: Any = make_client(
        config("schoology", {"user_id": "1", "requests_per_window": "5", "window_seconds": 1})
    )
    with paced:
        assert (paced.pacer.limit, paced.pacer.window) == (5, 1)


@pytest.mark.parametrize(
    ("platform", "options", "said"),
    [
        ("oneroster", {"page_size": "abc"}, "options.page_size must be a whole number from 1"),
        ("oneroster", {"page_size": "1.5"}, "got '1.5'"),
        ("oneroster", {"page_size": 0}, "options.page_size must be a whole number from 1, got 0"),
        ("oneroster", {"page_size": -3}, "got -3"),
        ("oneroster", {"page_size": True}, "got True"),
        ("oneroster", {"scopes": 5}, "options.scopes must be a list of scopes or one string"),
        ("oneroster", {"scopes": [1, None]}, "got [1, None]"),
        ("oneroster", {"scopes": ["a b"]}, "got ['a b']"),
        ("oneroster", {"token_auth": 5}, "options.token_auth must be one of basic, post, got 5"),
        ("oneroster", {"rostering_path": ["x"]}, "options.rostering_path must be a string"),
        ("lti", {**LTI_CONTEXTS, "scopes": 5}, "LTI Advantage options.scopes must be"),
        ("lti", {**LTI_CONTEXTS, "key_id": [1]}, "options.key_id must be a string, got [1]"),
        ("lti", {**LTI_CONTEXTS, "token_audience": 7}, "options.token_audience must be a string"),
        ("canvas", {"account_id": {"x": [1]}}, "Canvas options.account_id must be a string or"),
        ("canvas", {"throttle_threshold": "abc"}, "options.throttle_threshold must be a whole"),
        ("schoology", {"user_id": [1]}, "Schoology options.user_id must be a string or a whole"),
        (
            "schoology",
            {"user_id": "1", "requests_per_window": "0"},
            "Schoology options.requests_per_window must be a whole number from 1, got '0'",
        ),
        (
            "schoology",
            {"user_id": "1", "window_seconds": "2.5"},
            "Schoology options.window_seconds must be a whole number from 1 to 60, got '2.5'",
        ),
        ("schoology", {"user_id": "1", "window_seconds": 3600}, "from 1 to 60, got 3600"),
    ],
)
def test_a_bad_option_value_is_refused_naming_the_option(
    platform: str, options: dict[str, Any], said: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        make_client(config(platform, options))
    assert said in refused.value.message
    assert "\n" not in refused.value.message
