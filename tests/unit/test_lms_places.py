"""``same_place``: the address the duplicate check compares LMS base URLs by."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from lms.store import same_place

IPV6 = [
    # with and without a port; a default port is dropped as for any host
    ("https://[::1]:8443/", "https://[::1]:8443"),
    ("https://[::1]/", "https://[::1]"),
    ("https://[::1]:443/canvas/", "https://[::1]/canvas"),
    ("HTTP://[2001:DB8::1]:8080", "http://[2001:db8::1]:8080"),
    # zone-less literals: every way to write one address is one form
    ("http://[0:0:0:0:0:0:0:1]:80", "http://[::1]"),
    ("https://[2001:0db8:0000:0000:0000:0000:0000:0001]", "https://[2001:db8::1]"),
    ("https://[::FFFF:127.0.0.1]/", "https://[::ffff:7f00:1]"),
    # a zone is kept as written (lower case)
    ("https://[FE80::1%25eth0]:8443/", "https://[fe80::1%25eth0]:8443"),
]


@pytest.mark.parametrize(("url", "address"), IPV6)
def test_an_ipv6_host_keeps_its_brackets(url: str, address: str) -> None:
    assert same_place(url) == address
    parts = urlsplit(address)  # still a URL: an IPv6 host, then the port if any
    assert ":" in str(parts.hostname) and parts.port in (urlsplit(url).port, None)


def test_a_port_never_reads_as_part_of_an_ipv6_host() -> None:
    """Without brackets both were ``https://::1:8443``: two LMSs, one address."""
    assert same_place("https://[::1]:8443/") != same_place("https://[::1:8443]/")
    assert same_place("https://[::1:8443]/") == "https://[::1:8443]"


def test_the_forms_of_one_ipv6_address_are_one_place() -> None:
    forms = ["https://[::1]:8443", "https://[0::1]:8443/", "https://[0:0:0:0:0:0:0:1]:8443"]
    assert {same_place(url) for url in forms} == {"https://[::1]:8443"}
    assert same_place("https://[::2]:8443") != same_place("https://[::1]:8443")


def test_names_and_ipv4_hosts_are_unchanged() -> None:
    assert same_place("https://Canvas.Example.EDU.:443/") == "https://canvas.example.edu"
    assert same_place("http://127.0.0.1:8080/x/") == "http://127.0.0.1:8080/x"
