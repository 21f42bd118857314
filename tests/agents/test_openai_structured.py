"""Structured output of a real ``ChatOpenAI`` against a local OpenAI-compatible server.

langchain-openai's default structured output (``json_schema``) is parsed by the
OpenAI SDK inside the model call, so an unusable answer is raised from
``invoke`` rather than handed back as ``parsing_error``: these tests hold that
it is re-asked once, then retryable, like any other unusable answer, while
refused requests keep their classification.  Skipped without the ``openai`` extra.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from random import Random
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from pydantic import BaseModel, Field

from agents.base import PHASES, PhaseContext
from agents.engine import is_retryable
from agents.kinds.content import ContentAgent
from agents.lifecycle import error_details
from agents.offline_lesson import lesson_content
from agents.providers import invoke_structured, make_chat_model
from agents.schemas import ContentInput, EnvironmentRequest
from models.errors import ConfigurationError, ModelError, RetryableError, ValidationFailed

pytest.importorskip("langchain_openai")

API_KEY = "sk-fake-0123456789abcdef"
ANSWER_TEXT = "not json at all"


class Answer(BaseModel):
    """A number that must not be negative."""

    value: int = Field(ge=0)


@dataclass
class FakeOpenAI:
    """Answers each chat completion with the next scripted reply and records the requests."""

    replies: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0


def completion(content: str, finish_reason: str = "stop") -> tuple[int, dict[str, Any]]:
    message = {"role": "assistant", "content": content}
    return 200, {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": message}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def refused(status: int, kind: str) -> tuple[int, dict[str, Any]]:
    """An API error body that quotes the key, as some proxies do."""
    error = {"message": f"refused: {API_KEY}", "type": kind, "param": None, "code": kind}
    return status, {"error": error}


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            fake.requests.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            status, body = fake.replies[len(fake.requests) - 1]
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def model_for(server: FakeOpenAI) -> BaseChatModel:
    return make_chat_model(
        "openai:gpt-4o-mini",
        api_key=API_KEY,
        base_url=f"http://127.0.0.1:{server.port}/v1",
        max_retries=0,
    )


PROMPT = [HumanMessage(content="Give me a number.")]
VALID = completion('{"value": 3}')


def re_ask_of(server: FakeOpenAI) -> str:
    return str(server.requests[1]["messages"][-1]["content"])


def test_the_default_method_is_json_schema(server: FakeOpenAI) -> None:
    server.replies = [VALID]
    answer, usage = invoke_structured(model_for(server), Answer, PROMPT)
    assert answer == Answer(value=3) and usage.model_calls == 1
    assert server.requests[0]["response_format"]["type"] == "json_schema"
    assert "tools" not in server.requests[0]


def test_an_answer_that_is_not_json_is_re_asked(server: FakeOpenAI) -> None:
    server.replies = [completion(ANSWER_TEXT), VALID]
    answer, usage = invoke_structured(model_for(server), Answer, PROMPT)
    assert answer.value == 3
    assert (usage.input_tokens, usage.output_tokens, usage.model_calls) == (10, 5, 2)
    assert "Invalid JSON" in re_ask_of(server)


def test_an_answer_with_an_invalid_field_is_re_asked(server: FakeOpenAI) -> None:
    server.replies = [completion('{"value": -1}'), VALID]
    assert invoke_structured(model_for(server), Answer, PROMPT)[0].value == 3
    assert "value: Input should be greater than or equal to 0" in re_ask_of(server)


def test_an_answer_cut_off_at_the_token_limit_is_re_asked(server: FakeOpenAI) -> None:
    server.replies = [completion('{"val', finish_reason="length"), VALID]
    answer, usage = invoke_structured(model_for(server), Answer, PROMPT)
    assert answer.value == 3 and usage.input_tokens == 20
    assert "cut off at the token limit" in re_ask_of(server)


def test_a_filtered_answer_is_re_asked(server: FakeOpenAI) -> None:
    server.replies = [completion("", finish_reason="content_filter"), VALID]
    assert invoke_structured(model_for(server), Answer, PROMPT)[0].value == 3
    assert "content filter" in re_ask_of(server)


def test_a_second_unusable_answer_is_retryable_and_quotes_nothing(server: FakeOpenAI) -> None:
    server.replies = [completion(ANSWER_TEXT), completion(ANSWER_TEXT)]
    with pytest.raises(ModelError) as caught:
        invoke_structured(model_for(server), Answer, PROMPT)
    error = caught.value
    assert isinstance(error, RetryableError) and len(server.requests) == 2
    assert str(error).startswith("Answer: invalid structured output after one re-ask: ")
    assert "Invalid JSON" in str(error)
    assert ANSWER_TEXT not in str(error) and API_KEY not in str(error)
    assert error.__cause__ is None and error.__context__ is None


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (refused(401, "invalid_api_key"), ConfigurationError),
        (refused(400, "invalid_request_error"), ValidationFailed),
        (refused(429, "rate_limit_exceeded"), ModelError),
    ],
)
def test_refused_requests_keep_their_classification(
    server: FakeOpenAI, reply: tuple[int, dict[str, Any]], expected: type[Exception]
) -> None:
    server.replies = [reply, VALID]
    with pytest.raises(expected) as caught:
        invoke_structured(model_for(server), Answer, PROMPT)
    assert type(caught.value) is expected and len(server.requests) == 1
    assert API_KEY not in str(caught.value)


REQUEST = EnvironmentRequest(subject="Science", grade_level=6, topic="Volcanoes")


def run_content_agent(model: BaseChatModel) -> dict[str, Any]:
    """The content agent through its phases, as the engine runs them; the phases' data."""
    kind, payload, done = ContentAgent(), ContentInput(request=REQUEST), {}
    for phase in PHASES:
        ctx = PhaseContext(
            task_id="task",
            workflow_id="workflow",
            agent_type="content",
            payload=payload,
            previous=done,
            model=model,
        )
        done[phase.value] = kind.run_phase(phase, ctx).data
    return done


def test_the_content_agent_retries_an_answer_that_is_not_json(server: FakeOpenAI) -> None:
    """The tester's repro: the task failed at once, "model request rejected", not retryable."""
    server.replies = [completion(ANSWER_TEXT), completion(ANSWER_TEXT)]
    with pytest.raises(ModelError) as caught:
        run_content_agent(model_for(server))
    assert is_retryable(caught.value) and len(server.requests) == 2
    details = error_details(caught.value, retryable=True)
    assert details["message"].startswith("LessonContent: invalid structured output after ")
    for stored in (details["message"], details["traceback"]):
        assert ANSWER_TEXT not in stored and API_KEY not in stored


def test_the_content_agent_takes_the_answer_to_its_re_ask(server: FakeOpenAI) -> None:
    lesson = lesson_content(REQUEST, Random(7)).model_dump_json()
    server.replies = [completion(ANSWER_TEXT), completion(lesson)]
    done = run_content_agent(model_for(server))
    assert done["result"]["checks"]["passed"] and len(server.requests) == 2
    assert done["action"]["usage"]["model_calls"] == 2
