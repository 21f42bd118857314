"""What a chat model spec may say: ``offline``, ``offline:<drill>`` or ``provider:model``.

Checked twice: by the settings, so a typo in ``TOOLBOX_DEFAULT_MODEL`` or
``TOOLBOX_AGENT_MODELS`` stops every command at once with the variable's
name, and by ``agents.providers`` when it builds the model.  Nothing here
imports langchain, so reading the settings stays cheap.
"""

from __future__ import annotations

import re

OFFLINE_MODEL_NAME = "offline:toolbox-deterministic-v1"
DRILL_UNPARSEABLE = "unparseable-scripts"
"""``offline:unparseable-scripts``: the offline model with a parser-gate fault drill."""

_SPEC = re.compile(r"^(?P<provider>[a-z][a-z0-9_]*):(?P<model>\S.*)$", re.IGNORECASE)


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``(provider, model)``; ``("offline", "")`` is the default offline model.

    Raises ``ValueError`` saying what is wrong.  Whether the provider's
    package is installed is only known when the model is built.
    """
    spec = spec.strip()
    if spec.lower() in ("offline", OFFLINE_MODEL_NAME):
        return "offline", ""
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(
            f"model spec {spec!r} is not 'offline' or 'provider:model' (e.g. 'openai:gpt-4o-mini')"
        )
    provider, model = match["provider"].lower(), match["model"].strip()
    if provider == "offline" and model != DRILL_UNPARSEABLE:
        raise ValueError(
            f"unknown offline model {model!r}; use 'offline' or 'offline:{DRILL_UNPARSEABLE}'"
        )
    return provider, model
