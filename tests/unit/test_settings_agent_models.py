"""TOOLBOX_AGENT_MODELS names each agent kind once: a repeat is refused, not silently dropped."""

from __future__ import annotations

import os

import pytest

from models.errors import ConfigurationError
from workers.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("TOOLBOX_"):
            monkeypatch.delenv(key)


def test_a_kind_named_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # before, the second pair won: content ran the offline model, not the one asked for first
    monkeypatch.setenv(
        "TOOLBOX_AGENT_MODELS", "content=openai:gpt-4o-mini,quiz=offline, content=offline"
    )
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert str(refused.value) == (
        "TOOLBOX_AGENT_MODELS: agent kind(s) ['content'] named more than once"
    )


def test_distinct_kinds_still_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBOX_AGENT_MODELS", "content=openai:gpt-4o-mini, quiz=offline")
    settings = load_settings()
    assert settings.model_for("content") == "openai:gpt-4o-mini"
    assert settings.model_for("quiz") == "offline"


def test_a_kind_named_twice_in_json_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBOX_AGENT_MODELS", '{"quiz": "openai:gpt-4o-mini", "quiz": "offline"}')
    with pytest.raises(ConfigurationError, match=r"\['quiz'\] named more than once"):
        load_settings()
