"""A provider error that quotes the API key it refused is stored and logged with the key masked."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import SecretStr
from sqlalchemy import Engine, text

from agents.engine import Runner
from workers import client
from workers.db import get_engine
from workers.logs import JsonFormatter
from workers.runtime import report_failure


class AuthenticationError(Exception):
    """What an SDK raises for a 401 (classified by its name, as the real ones are)."""


class KeyQuotingModel(BaseChatModel):
    """A model behind a proxy whose 401 quotes the key it was sent (some OpenAI-compatible
    servers answer ``Invalid API key: sk-...``)."""

    api_key: SecretStr

    @property
    def _llm_type(self) -> str:
        return "key-quoting"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Any | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tool_choice=tool_choice, **kwargs)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        key = self.api_key.get_secret_value()
        raise AuthenticationError(f"Error code: 401 - Invalid API key: {key}")


def test_a_provider_error_quoting_the_api_key_is_stored_and_logged_masked(
    toolbox_env: dict[str, str], engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    key = f"sk-proj-{uuid.uuid4().hex}"
    runner = Runner(
        get_engine(),
        hostname="model-secrets@test",
        max_deliveries=3,
        publish=lambda _workflow, _event: None,
        model_factory=lambda _kind: KeyQuotingModel(api_key=SecretStr(key)),
        report_error=report_failure,
    )
    request = {"subject": "Science", "grade_level": 8, "topic": "Volcanoes"}
    task_id = client.submit("content", {"request": request})
    with caplog.at_level(logging.INFO):
        assert runner.execute(task_id).action == "done"
        logging.getLogger("agents.providers").error("refused: %s", f"Invalid API key: {key}")

    with engine.connect() as connection:
        task = connection.execute(
            text("SELECT status, error_message, error_details FROM agent_tasks WHERE id = :id"),
            {"id": task_id},
        ).one()
        logged = connection.execute(
            text("SELECT error_message, stack_trace FROM error_logs WHERE task_id = :id"),
            {"id": task_id},
        ).one()
    assert task.status == "failed"
    assert task.error_message == (
        "model credentials refused: AuthenticationError: Error code: 401 - Invalid API key: ***"
    )
    stored = [task.error_message, json.dumps(task.error_details), *logged]
    assert "AuthenticationError" in task.error_details["traceback"]
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert "Invalid API key: ***" in lines[-1]
    for shown in stored + lines:
        assert key not in shown
