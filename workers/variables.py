"""Which ``TOOLBOX_*`` environment variables exist, so that a misspelt one is refused.

pydantic-settings ignores a variable no setting reads: a misspelt
``TOOLBOX_CONCURRENCY`` left the concurrency at its default without a word.
``load_settings`` refuses every ``TOOLBOX_*`` variable that is neither a
setting's nor one of ``OTHERS``.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

OTHERS = frozenset(
    {
        # the servers the tests and benchmarks make their databases in
        # (tests/conftest.py, bench/harness.py, .ci/run)
        "TOOLBOX_TEST_DATABASE_URL",
        "TOOLBOX_TEST_REDIS_URL",
        # the `toolbox up` a child process watches (workers/lifelines.py)
        "TOOLBOX_SUPERVISOR",
        # the image docker-compose.yml runs
        "TOOLBOX_IMAGE",
        # the secrets of `toolbox lms add` and `lms update` (workers/cli/lms_input.py)
        "TOOLBOX_LMS_API_KEY",
        "TOOLBOX_LMS_CLIENT_SECRET",
        "TOOLBOX_LMS_REFRESH_TOKEN",
        "TOOLBOX_LMS_PRIVATE_KEY_FILE",
    }
)
"""The names the project reads outside the settings class."""


def unknown_variables(environ: Mapping[str, str], settings: Collection[str], prefix: str) -> str:
    """One line naming each set ``prefix`` variable nobody reads ("" when there is none).

    Names compare in upper case, as pydantic-settings reads them, and a
    setting's name in other letters is refused too: the processes the
    Procfile starts would not see it in their options; an empty
    value counts as unset, as it does for a setting.  The suggestion compares
    what follows the prefix, which every name shares.
    """
    known = {name.removeprefix(prefix): name for name in (*settings, *OTHERS)}
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(prefix) or not environ[name]:
            continue
        if upper in known.values():
            if name != upper:  # read here, but not by the Procfile's or compose's ${...}
                problems.append(
                    f"{name}: write it {upper} (the Procfile and docker-compose.yml"
                    " read that spelling only)"
                )
            continue
        close = difflib.get_close_matches(upper.removeprefix(prefix), sorted(known), n=1)
        hint = (
            f", did you mean {known[close[0]]}?"
            if close
            else " (not a setting: see Configuration in the README)"
        )
        problems.append(f"{name}: unknown variable{hint}")
    return "; ".join(problems)
