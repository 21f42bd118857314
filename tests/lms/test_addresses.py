"""The addresses ``add`` and ``update`` take: https, or plain http to this host only."""

from __future__ import annotations

import pytest

from lms.base import Credentials
from lms.store import NewIntegration, validated
from models.errors import ValidationFailed


def canvas_at(base_url: str) -> NewIntegration:
    return NewIntegration("canvas", "Springfield", base_url, Credentials(api_key="k3y-value"))


@pytest.mark.parametrize(
    "base_url",
    [
        "https://canvas.example.org",
        "http://127.0.0.1:8080",
        "http://127.8.9.10",
        "http://[::1]:8443/canvas",
        "http://localhost:3000",
        "HTTP://LOCALHOST.",
    ],
)
def test_https_anywhere_and_plain_http_to_a_loopback_host_are_taken(base_url: str) -> None:
    assert validated(canvas_at(base_url)).base_url == base_url


@pytest.mark.parametrize(
    ("base_url", "https"),
    [
        ("http://canvas.example.org", "https://canvas.example.org"),
        ("http://10.0.0.7:8080/lms", "https://10.0.0.7:8080/lms"),
        ("http://[2001:db8::1]/", "https://[2001:db8::1]/"),
        ("http://localhost.example.org", "https://localhost.example.org"),
    ],
)
def test_plain_http_to_another_host_is_refused_naming_the_flag(base_url: str, https: str) -> None:
    """It was taken, and every request would have sent the bearer token unencrypted."""
    with pytest.raises(ValidationFailed) as caught:
        validated(canvas_at(base_url))
    assert caught.value.message == (
        "base URL (--base-url) must use https: plain http would send the credentials"
        " unencrypted (it is taken only for a loopback host: 127.0.0.0/8, ::1, localhost);"
        f" give {https}"
    )


def test_a_token_endpoint_in_plain_http_is_refused_too() -> None:
    """The client secret goes there."""
    new = NewIntegration(
        "oneroster", "District 9", "https://sis.example.org",
        Credentials(client_id="c", client_secret="s3cret"),
        token_endpoint="http://sis.example.org/oauth/token",
    )  # fmt: skip
    with pytest.raises(ValidationFailed, match=r"^token endpoint \(--token-endpoint\) must use"):
        validated(new)
