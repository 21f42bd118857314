"""Each client declares the option keys it reads, and any other is refused by name.

``toolbox lms add --option memberships_ulr=...`` was stored and then ignored:
nothing said the key was not one the client reads.
"""

from __future__ import annotations

import inspect
import re

import pytest

from lms.registry import CLIENTS, unknown_option

READ = re.compile(r"options(?:\.get\(|\[|,\s*)\"(\w+)\"")
"""A client reading an option: ``options.get("key"``, ``options["key"]``,
``option.text(options, "key"`` (``lms.options``, its arguments maybe on lines of their own)."""


@pytest.mark.parametrize("platform", sorted(CLIENTS))
def test_a_client_declares_exactly_the_option_keys_its_module_reads(platform: str) -> None:
    client = CLIENTS[platform]
    read = set(READ.findall(inspect.getsource(inspect.getmodule(client) or client)))
    assert client.option_keys == read


def test_an_unknown_key_names_the_platform_the_known_keys_and_the_close_one() -> None:
    assert unknown_option("canvas", ["account_id", "throttle_treshold"]) == (
        "unknown option 'throttle_treshold' for canvas; did you mean 'throttle_threshold'? "
        "(known: account_id, throttle_threshold)"
    )
    assert unknown_option("lti", ["contexts", "memberships_ulr"]) == (
        "unknown option 'memberships_ulr' for lti (known: contexts, key_id, scopes, token_audience)"
    )
    assert unknown_option("blackboard", ["proxy"]) == (
        "unknown option 'proxy' for blackboard (known: none, blackboard reads no options)"
    )
    assert unknown_option("oneroster", ["page_size", "token_auth", "scopes"]) is None
    assert unknown_option("moodle", []) is None
