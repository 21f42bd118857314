"""Model specs, provider error mapping and structured output with one re-ask.

Answers here come from a fake chat model that calls tools, the path of
langchain's generic ``with_structured_output`` (Anthropic's, for one);
OpenAI's ``json_schema`` path, parsed inside the call, is tested against a
local server in ``test_openai_structured.py``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.exceptions import ModelRefusalError, OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field, ValidationError

from agents.offline import OfflineChatModel
from agents.providers import (
    check_provider,
    classify_model_error,
    invoke_structured,
    make_chat_model,
    unusable_answer,
)
from models.errors import (
    ConfigurationError,
    ModelError,
    NotSupported,
    PermanentError,
    RetryableError,
    ValidationFailed,
)


@pytest.mark.parametrize("spec", ["offline", " OFFLINE ", "offline:toolbox-deterministic-v1"])
def test_offline_specs(spec: str) -> None:
    model = make_chat_model(spec, temperature=0.7, max_retries=3)
    assert isinstance(model, OfflineChatModel)


@pytest.mark.parametrize("spec", ["", "gpt-4o", ":gpt-4o", "openai:", "Open AI:x", "offline:v2"])
def test_malformed_specs(spec: str) -> None:
    with pytest.raises(ConfigurationError):
        make_chat_model(spec)


def test_unknown_provider() -> None:
    with pytest.raises(ConfigurationError, match="nosuchprovider"):
        make_chat_model("nosuchprovider:some-model")


@pytest.mark.parametrize(
    ("spec", "modules"),
    [
        ("openai:gpt-4o-mini", ["langchain_openai"]),
        ("anthropic:claude-3-5-haiku-latest", ["langchain_anthropic"]),
        ("ollama:llama3", ["langchain_ollama", "langchain_community"]),
    ],
)
def test_missing_extra_names_it(
    spec: str, modules: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain.chat_models import base

    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)
    # langchain caches a provider's class once imported (test_openai_structured.py
    # builds ChatOpenAI when the extra is installed): forget it, to import it again
    forget = getattr(getattr(base, "_get_chat_model_creator", None), "cache_clear", None)
    if forget is not None:
        forget()
    provider = spec.split(":")[0]
    with pytest.raises(ConfigurationError) as caught:
        make_chat_model(spec)
    assert f"pip install 'toolboxai-worker[{provider}]'" in str(caught.value)


@pytest.mark.parametrize("spec", ["offline", "OFFLINE", "offline:unparseable-scripts"])
def test_check_provider_takes_the_offline_model(spec: str) -> None:
    check_provider(spec)


def test_check_provider_refuses_an_unknown_provider_naming_the_known() -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_provider("nosuchprov:some-model")
    message = str(caught.value)
    assert message.startswith("unknown model provider 'nosuchprov'; langchain knows: ")
    assert "openai" in message and "anthropic" in message


@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        ("openai:gpt-4o-mini", "pip install 'toolboxai-worker[openai]'"),
        ("bedrock:anthropic.claude-v2", "pip install langchain-aws"),
        ("google_genai:gemini-2.0-flash", "pip install langchain-google-genai"),
    ],
)
def test_check_provider_refuses_a_provider_not_installed(
    spec: str, hint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("langchain_openai", "langchain_aws", "langchain_google_genai"):
        monkeypatch.setitem(sys.modules, module, None)  # installed or not, it will not import
    with pytest.raises(ConfigurationError) as caught:
        check_provider(spec)
    assert str(caught.value) == f"model provider {spec.split(':')[0]!r} is not installed: {hint}"


def test_check_provider_takes_an_installed_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain.chat_models import base

    # langchain_core stands in for a provider's package: installed, and cheap to find
    monkeypatch.setitem(base._BUILTIN_PROVIDERS, "toolbox_test", ("langchain_core", "X", print))
    check_provider("toolbox_test:some-model")


def test_provider_specs_reach_init_chat_model(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def fake_init(model: str, **kwargs: Any) -> BaseChatModel:
        calls.append((model, kwargs))
        return OfflineChatModel()

    monkeypatch.setattr("langchain.chat_models.init_chat_model", fake_init)
    make_chat_model("openai:gpt-4o-mini", temperature=0)
    make_chat_model("Ollama:llama3:8b")
    assert calls == [
        ("gpt-4o-mini", {"model_provider": "openai", "temperature": 0}),
        ("llama3:8b", {"model_provider": "ollama"}),
    ]


def _named(name: str, base: type[Exception] = Exception, **attrs: Any) -> Exception:
    cls: type[Exception] = type(name, (base,), {})
    exc = cls("provider said no")
    for key, value in attrs.items():
        setattr(exc, key, value)
    return exc


class _Response:
    def __init__(self, status_code: int, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.headers = headers


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_named("RateLimitError"), ModelError),
        (_named("APITimeoutError"), ModelError),
        (_named("APIConnectionError"), ModelError),
        (_named("ConnectTimeout"), ModelError),
        (_named("InternalServerError"), ModelError),
        (TimeoutError("slow"), ModelError),
        (ConnectionRefusedError("down"), ModelError),
        (_named("APIStatusError", status_code=503), ModelError),
        (_named("APIStatusError", status_code=529), ModelError),
        (_named("HTTPStatusError", response=_Response(429, {})), ModelError),
        (_named("AuthenticationError"), ConfigurationError),
        (_named("APIStatusError", status_code=401), ConfigurationError),
        (_named("APIStatusError", status_code=404), ConfigurationError),
        (_named("BadRequestError"), ValidationFailed),
        (_named("APIStatusError", status_code=400), ValidationFailed),
        (NotImplementedError("no tools"), NotSupported),
        (ValueError("bad value"), PermanentError),
        (RuntimeError("Rate limit exceeded, slow down"), ModelError),
        (TypeError("timeout must be a float"), PermanentError),
    ],
)
def test_classify_model_error(exc: Exception, expected: type[Exception]) -> None:
    error = classify_model_error(exc)
    assert type(error) is expected
    assert isinstance(error, RetryableError) == (expected is ModelError)


def test_retry_after_is_kept() -> None:
    exc = _named("RateLimitError", response=_Response(429, {"retry-after": "7"}))
    error = classify_model_error(exc)
    assert isinstance(error, ModelError) and error.retry_after == 7.0


def test_own_errors_pass_through() -> None:
    error = ValidationFailed(errors=["x"])
    assert classify_model_error(error) is error


class Answer(BaseModel):
    """A number that must not be negative."""

    value: int = Field(ge=0)


class ScriptedModel(BaseChatModel):
    """Answers with the scripted messages in turn and records what it was asked."""

    script: list[Callable[[], AIMessage]]
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tool_choice=tool_choice, **kwargs)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=self.script[len(self.seen) - 1]())])


def _call(value: int) -> Callable[[], AIMessage]:
    usage = UsageMetadata(input_tokens=10, output_tokens=5, total_tokens=15)
    return lambda: AIMessage(
        content="",
        tool_calls=[{"name": "Answer", "args": {"value": value}, "id": f"c{value}"}],
        usage_metadata=usage,
    )


def _raise(exc: Exception) -> Callable[[], AIMessage]:
    def fail() -> AIMessage:
        raise exc

    return fail


PROMPT = [HumanMessage(content="Give me a number.")]


def test_valid_answer_first_time() -> None:
    model = ScriptedModel(script=[_call(3)])
    answer, usage = invoke_structured(model, Answer, PROMPT)
    assert answer == Answer(value=3)
    assert (usage.input_tokens, usage.output_tokens, usage.model_calls) == (10, 5, 1)


def test_invalid_answer_is_re_asked_with_the_error() -> None:
    model = ScriptedModel(script=[_call(-1), _call(4)])
    answer, usage = invoke_structured(model, Answer, PROMPT)
    assert answer.value == 4 and usage.model_calls == 2 and usage.input_tokens == 20
    re_ask = model.seen[1][-1].text
    assert "value" in re_ask and "greater than or equal to 0" in re_ask and "-1" in re_ask


def test_missing_tool_call_is_re_asked() -> None:
    model = ScriptedModel(script=[lambda: AIMessage(content="I'd rather not."), _call(1)])
    assert invoke_structured(model, Answer, PROMPT)[0].value == 1
    assert "did not call the tool" in model.seen[1][-1].text


def test_second_invalid_answer_is_a_retryable_model_error() -> None:
    model = ScriptedModel(script=[_call(-1), _call(-2)])
    with pytest.raises(ModelError, match="Answer: invalid structured output") as caught:
        invoke_structured(model, Answer, PROMPT)
    assert isinstance(caught.value, RetryableError)
    assert len(model.seen) == 2


def test_provider_errors_are_classified() -> None:
    model = ScriptedModel(script=[_raise(_named("RateLimitError"))])
    with pytest.raises(ModelError):
        invoke_structured(model, Answer, PROMPT)
    model = ScriptedModel(script=[_raise(_named("AuthenticationError"))])
    with pytest.raises(ConfigurationError):
        invoke_structured(model, Answer, PROMPT)


SECRET_ANSWER = "my-private-answer-text"


def _json_error() -> Exception:
    try:
        json.loads(SECRET_ANSWER)
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError("unreachable")


def _schema_error() -> Exception:
    try:
        Answer.model_validate_json(SECRET_ANSWER)
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


def _parser_error() -> Exception:
    error = OutputParserException(f"Invalid json output: {SECRET_ANSWER}", llm_output=SECRET_ANSWER)
    error.__cause__ = _json_error()
    return error


def _completion() -> SimpleNamespace:
    """What OpenAI's ``LengthFinishReasonError`` keeps: the completion and its usage."""
    return SimpleNamespace(usage=SimpleNamespace(prompt_tokens=7, completion_tokens=50))


UNUSABLE = [
    pytest.param(_schema_error, "(root): Invalid JSON", id="ValidationError"),
    pytest.param(_parser_error, "the answer is not valid JSON (Expecting value", id="parser"),
    pytest.param(_json_error, "the answer is not valid JSON (Expecting value", id="json"),
    pytest.param(
        lambda: _named("LengthFinishReasonError", completion=_completion()),
        "the answer was cut off at the token limit",
        id="length",
    ),
    pytest.param(
        lambda: _named("ContentFilterFinishReasonError"), "content filter", id="content_filter"
    ),
    pytest.param(lambda: ModelRefusalError(SECRET_ANSWER), "refused to answer", id="refusal"),
]


@pytest.mark.parametrize(("error", "why"), UNUSABLE)
def test_unusable_answer_raised_by_the_call_is_re_asked(
    error: Callable[[], Exception], why: str
) -> None:
    model = ScriptedModel(script=[_raise(error()), _call(2)])
    answer, usage = invoke_structured(model, Answer, PROMPT)
    assert answer.value == 2 and usage.model_calls == 2
    re_ask = model.seen[1][-1].text
    assert why in re_ask and SECRET_ANSWER not in re_ask


@pytest.mark.parametrize(("error", "why"), UNUSABLE)
def test_second_unusable_answer_raised_is_retryable_and_quotes_nothing(
    error: Callable[[], Exception], why: str
) -> None:
    model = ScriptedModel(script=[_raise(error()), _raise(error())])
    with pytest.raises(ModelError) as caught:
        invoke_structured(model, Answer, PROMPT)
    message = str(caught.value)
    assert message.startswith("Answer: invalid structured output after one re-ask: ")
    assert why in message and SECRET_ANSWER not in message
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert len(model.seen) == 2


def test_usage_of_an_answer_cut_off_by_the_sdk_is_counted() -> None:
    cut = _named("LengthFinishReasonError", completion=_completion())
    model = ScriptedModel(script=[_raise(cut), _call(2)])
    usage = invoke_structured(model, Answer, PROMPT)[1]
    assert (usage.input_tokens, usage.output_tokens, usage.model_calls) == (17, 55, 2)


@pytest.mark.parametrize(
    "metadata",
    [{"finish_reason": "length"}, {"stop_reason": "max_tokens"}, {"done_reason": "length"}],
)
def test_tool_call_cut_off_at_the_token_limit_is_re_asked(metadata: dict[str, str]) -> None:
    cut = AIMessage(
        content="",
        invalid_tool_calls=[{"name": "Answer", "args": '{"val', "id": "c1", "error": None}],
        response_metadata=metadata,
    )
    model = ScriptedModel(script=[lambda: cut, _call(5)])
    assert invoke_structured(model, Answer, PROMPT)[0].value == 5
    re_ask = model.seen[1][-1].text
    assert "cut off at the token limit" in re_ask and "Keep it shorter" in re_ask
    assert '{\\"val' in re_ask  # the cut answer is shown to the model, never in an error


def test_invalid_arguments_are_not_quoted_in_the_error() -> None:
    bad = AIMessage(
        content="", tool_calls=[{"name": "Answer", "args": {"value": SECRET_ANSWER}, "id": "c"}]
    )
    model = ScriptedModel(script=[lambda: bad, lambda: bad])
    with pytest.raises(ModelError) as caught:
        invoke_structured(model, Answer, PROMPT)
    assert "value: Input should be a valid integer" in str(caught.value)
    assert SECRET_ANSWER not in str(caught.value)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_named("AuthenticationError"), ConfigurationError),
        (_named("APIStatusError", status_code=401), ConfigurationError),
        (_named("BadRequestError"), ValidationFailed),
        (_named("APIStatusError", status_code=400), ValidationFailed),
        (_named("RateLimitError"), ModelError),
        (ValueError("bad value"), PermanentError),
    ],
)
def test_request_errors_are_not_re_asked(exc: Exception, expected: type[Exception]) -> None:
    model = ScriptedModel(script=[_raise(exc), _call(1)])
    with pytest.raises(expected) as caught:
        invoke_structured(model, Answer, PROMPT)
    assert type(caught.value) is expected and len(model.seen) == 1


@pytest.mark.parametrize(
    ("exc", "unusable"),
    [
        (_schema_error(), True),
        (_parser_error(), True),
        (_json_error(), True),
        (_named("LengthFinishReasonError"), True),
        (_named("AuthenticationError"), False),
        (_named("BadRequestError", status_code=400), False),
        (ValueError("bad value"), False),
        (ValidationFailed(errors=["x"]), False),
    ],
)
def test_unusable_answer(exc: Exception, unusable: bool) -> None:
    assert unusable_answer(exc) is unusable
