"""Chat model wiring: build a model from a settings string, call it for structured output.

Specs are ``provider:model`` (``openai:gpt-4o-mini``, ``anthropic:claude-3-5-haiku-latest``,
``ollama:llama3``) or ``offline`` for the deterministic default.  Provider
errors are mapped onto the worker's error tree here, by exception class and
status code, so retry policy never has to look at a provider's message text.
A model's API keys are remembered for ``models.redaction.redact`` before it is
called: a provider or proxy that quotes the key it refused (``Invalid API key:
sk-...``) must not put it in a task's error, ``error_logs`` or a log line.
An unusable structured answer is re-asked once whether the provider hands it
back (``parsing_error``) or raises it from the call (``unusable_answer``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable
from pydantic import BaseModel, SecretStr, ValidationError

from agents.base import Usage
from agents.field_paths import field_errors
from agents.model_spec import DRILL_UNPARSEABLE, OFFLINE_MODEL_NAME, parse_model_spec
from agents.offline import OfflineChatModel
from models.errors import (
    ConfigurationError,
    ModelError,
    NotSupported,
    PermanentError,
    ToolboxError,
    ValidationFailed,
)
from models.redaction import redact, remember

T = TypeVar("T", bound=BaseModel)

EXTRAS = {
    "openai": "openai",
    "azure_openai": "openai",
    "anthropic": "anthropic",
    "ollama": "ollama",
}
_OFFLINE_IGNORED = frozenset(
    {"temperature", "top_p", "max_tokens", "timeout", "max_retries", "seed"}
)
_RETRYABLE_CLASSES = frozenset(
    {
        "RateLimitError",
        "APITimeoutError",
        "APIConnectionError",
        "InternalServerError",
        "ServiceUnavailableError",
        "OverloadedError",
        "TimeoutException",
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "ConnectError",
        "ReadError",
        "WriteError",
        "RemoteProtocolError",
        "NetworkError",
        "ServerError",
        "DeadlineExceeded",
        "ResourceExhausted",
        "ServiceUnavailable",
        "TooManyRequests",
        "ThrottlingException",
    }
)
_CREDENTIAL_CLASSES = frozenset(
    {
        "AuthenticationError",
        "PermissionDeniedError",
        "Unauthenticated",
        "PermissionDenied",
    }
)
_REJECTED_CLASSES = frozenset({"BadRequestError", "UnprocessableEntityError", "InvalidArgument"})
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
_UNUSABLE_ANSWER_CLASSES = frozenset(
    {"LengthFinishReasonError", "ContentFilterFinishReasonError", "ModelRefusalError"}
)
"""An answer the SDK could not parse (OpenAI's: cut off, filtered) or langchain's refusal."""
_CUT_OFF_REASONS = (
    ("finish_reason", "length"),
    ("stop_reason", "max_tokens"),
    ("done_reason", "length"),
)
CUT_OFF = "the answer was cut off at the token limit"
_PROGRAMMING_ERRORS = (TypeError, AttributeError, KeyError, IndexError, NameError)
_LAST_RESORT = re.compile(
    r"rate.?limit|too many requests|timed? ?out|temporarily unavailable|overloaded|"
    r"connection (reset|refused|aborted)",
    re.IGNORECASE,
)


def check_provider(spec: str) -> None:
    """Refuse a spec whose provider langchain does not know or whose package is missing.

    What ``make_chat_model`` would find at a task's first model call, found
    when a worker starts instead (no model is built: no API key is needed).
    """
    try:
        provider, _ = parse_model_spec(spec)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    if provider == "offline":
        return
    from langchain.chat_models import base  # about 0.7 s: only for a non-offline spec

    known: dict[str, tuple[Any, ...]] | None = getattr(base, "_BUILTIN_PROVIDERS", None)
    if known is None:  # a langchain without the table: make_chat_model will tell
        return
    if provider not in known:
        raise ConfigurationError(
            f"unknown model provider {provider!r}; langchain knows: {', '.join(sorted(known))}",
            provider=provider,
        )
    package = str(known[provider][0]).split(".")[0]
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a parent that fails to import, a module without spec
        found = False
    if not found:
        raise ConfigurationError(
            f"model provider {provider!r} is not installed: {_install_hint(provider, package)}",
            provider=provider,
        )


def _install_hint(provider: str, package: str | None = None) -> str:
    extra = EXTRAS.get(provider)
    if extra:
        return f"pip install 'toolboxai-worker[{extra}]'"
    return f"pip install {(package or f'langchain_{provider}').replace('_', '-')}"


def make_chat_model(spec: str, **kwargs: Any) -> BaseChatModel:
    """The chat model named by ``spec``; ``kwargs`` go to the provider's class.

    The offline model accepts and ignores sampling options (temperature, ...):
    its output is deterministic by design.
    """
    try:
        provider, model = parse_model_spec(spec)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    if provider == "offline" and model == DRILL_UNPARSEABLE:
        return OfflineChatModel(
            model_name=f"{OFFLINE_MODEL_NAME}+{DRILL_UNPARSEABLE}", drill=DRILL_UNPARSEABLE
        )
    if provider == "offline":
        options = {k: v for k, v in kwargs.items() if k not in _OFFLINE_IGNORED}
        try:
            return OfflineChatModel(**options)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid options for the offline model: {exc}") from exc
    # imported here: langchain's chat_models costs about 0.7 s of CPU to import, and
    # the CLI, the offline model and every worker start would pay it for nothing
    from langchain.chat_models import init_chat_model

    try:
        chat_model: BaseChatModel = init_chat_model(model, model_provider=provider, **kwargs)
    except ImportError as exc:
        raise ConfigurationError(
            f"model provider {provider!r} is not installed: {_install_hint(provider)}",
            provider=provider,
        ) from exc
    except Exception as exc:
        raise ConfigurationError(
            redact(f"cannot build chat model {spec!r}: {exc}"), provider=provider
        ) from exc
    remember_secrets(chat_model)
    return chat_model


def remember_secrets(model: BaseChatModel) -> None:
    """Have ``redact`` mask the model's secret fields (``openai_api_key``, ...) from now on."""
    remember(*(v.get_secret_value() for v in vars(model).values() if isinstance(v, SecretStr)))


def _status_code(exc: BaseException) -> int | None:
    for holder in (exc, getattr(exc, "response", None)):
        for attr in ("status_code", "status", "code"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                return value
    return None


def _retry_after(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if value is None and headers is not None and hasattr(headers, "get"):
        value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _by_status(exc: BaseException, status: int, text: str) -> ToolboxError:
    if status in _RETRYABLE_STATUS or status >= 500:
        return ModelError(text, retry_after=_retry_after(exc), status_code=status)
    if status in (401, 403):
        return ConfigurationError(f"model credentials refused: {text}", status_code=status)
    if status == 404:
        return ConfigurationError(f"model or endpoint not found: {text}", status_code=status)
    return ValidationFailed(f"model request rejected: {text}", errors=[text])


def classify_model_error(exc: BaseException) -> ToolboxError:
    """Map a provider exception onto the error tree.

    Order: our own errors as they are; the HTTP status code (on the exception or
    its ``response``); the exception's class names (SDKs share names such as
    ``RateLimitError`` or httpx's ``ConnectTimeout``); builtin timeouts and
    connection errors.  Only an exception none of these identify is matched on
    its message text, as a last resort; anything left is permanent.
    """
    if isinstance(exc, ToolboxError):
        return exc
    text = redact(f"{type(exc).__name__}: {exc}")
    status = _status_code(exc)
    if status is not None:
        return _by_status(exc, status, text)
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _RETRYABLE_CLASSES or isinstance(exc, (TimeoutError, ConnectionError)):
        return ModelError(text, retry_after=_retry_after(exc))
    if names & _CREDENTIAL_CLASSES:
        return ConfigurationError(f"model credentials refused: {text}")
    if names & _REJECTED_CLASSES:
        return ValidationFailed(f"model request rejected: {text}", errors=[text])
    if isinstance(exc, NotImplementedError):
        return NotSupported(f"the chat model does not support this call: {text}")
    if not isinstance(exc, _PROGRAMMING_ERRORS) and _LAST_RESORT.search(str(exc)):
        return ModelError(text)
    return PermanentError(f"unclassified model failure: {text}")


def usage_of(message: BaseMessage | None) -> Usage:
    """Token usage of one model response (``usage_metadata``, else OpenAI-style metadata)."""
    if isinstance(message, AIMessage) and message.usage_metadata:
        meta = message.usage_metadata
        return Usage(meta["input_tokens"], meta["output_tokens"], 1)
    raw = getattr(message, "response_metadata", {}).get("token_usage") or {}
    return Usage(int(raw.get("prompt_tokens", 0)), int(raw.get("completion_tokens", 0)), 1)


def unusable_answer(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a model call, says an answer came back but is unusable.

    langchain-openai's default structured output (``json_schema``) is parsed inside
    the call by the OpenAI SDK, so an answer that is not JSON or not the schema is
    raised (pydantic's ``ValidationError``, with the HTTP 200 response attached),
    as is one cut off at the token limit or stopped by the content filter; other
    providers' parsers raise ``OutputParserException`` or a JSON decode error.
    These are the model's sampling accidents, as a ``parsing_error`` is; a refused
    request (credentials, bad request, rate limit) is another class and is not one.
    """
    if isinstance(exc, ValidationError | OutputParserException | json.JSONDecodeError):
        return True
    return bool({cls.__name__ for cls in type(exc).__mro__} & _UNUSABLE_ANSWER_CLASSES)


def _cut_off(raw: BaseMessage | None) -> bool:
    """Whether the answer stopped at the token limit (OpenAI, Anthropic, Ollama's words)."""
    meta = getattr(raw, "response_metadata", None) or {}
    return any(meta.get(key) == value for key, value in _CUT_OFF_REASONS)


def _why_unusable(error: BaseException) -> str:
    """What is wrong with an answer, in words that never quote it.

    pydantic's messages hold no input, but the exceptions' own text does
    (``input_value='...'``, ``Invalid json output: ...``, a refusal's text), and a
    task's error must show neither the model's answer nor a key it echoed.
    """
    names = {cls.__name__ for cls in type(error).__mro__}
    if isinstance(error, ValidationError):
        return "; ".join(field_errors(error, root="(root)")[:20])
    if isinstance(error, json.JSONDecodeError):
        return f"the answer is not valid JSON ({error.msg} at line {error.lineno})"
    if "LengthFinishReasonError" in names:
        return CUT_OFF
    if "ContentFilterFinishReasonError" in names:
        return "the answer was stopped by the provider's content filter"
    if "ModelRefusalError" in names:
        return "the model refused to answer"
    cause = error.__cause__
    if isinstance(error, OutputParserException) and isinstance(cause, BaseException):
        return _why_unusable(cause)
    return f"the answer could not be parsed ({type(error).__name__})"


def _describe(error: object, raw: BaseMessage | None) -> str:
    if _cut_off(raw):
        return CUT_OFF
    if isinstance(error, BaseException):
        return _why_unusable(error)
    calls = getattr(raw, "tool_calls", None)
    return "the answer did not call the tool" if not calls else "the answer could not be parsed"


def _shown_answer(raw: BaseMessage | None) -> str:
    """The answer as the re-ask quotes it to the model: its tool calls' arguments, else its text."""
    calls = getattr(raw, "tool_calls", None) or []
    invalid = getattr(raw, "invalid_tool_calls", None) or []
    if calls or invalid:
        shown = [c.get("args") for c in [*calls, *invalid]]
        return json.dumps(shown, default=str)[:4000]
    return raw.text[:4000] if isinstance(raw, AIMessage) else ""


def _usage_of_failure(exc: BaseException) -> Usage:
    """Usage of a call that raised: the SDK's ``completion.usage`` if it kept one; one call."""
    counted = getattr(getattr(exc, "completion", None), "usage", None)
    prompt = getattr(counted, "prompt_tokens", 0)
    completion = getattr(counted, "completion_tokens", 0)
    ints = isinstance(prompt, int) and isinstance(completion, int)
    return Usage(prompt, completion, 1) if ints else Usage(0, 0, 1)


def _structured(model: BaseChatModel, schema: type[T]) -> Runnable[Any, Any]:
    """``model`` answering ``schema``, keeping the raw answer and any parsing error."""
    try:
        return model.with_structured_output(schema, include_raw=True)
    except Exception as exc:
        raise classify_model_error(exc) from exc


def _ask(
    runnable: Runnable[Any, Any], schema: type[T], conversation: list[BaseMessage], usage: Usage
) -> tuple[T | None, str, str]:
    """One call: the valid answer, else what was wrong with it and the answer to quote back.

    An unusable answer is told apart from a failed request whether the provider
    hands it back (``parsing_error``) or raises it (``unusable_answer``).
    """
    started = time.perf_counter()
    try:
        answer = cast(dict[str, Any], runnable.invoke(conversation))
    except Exception as exc:
        if not unusable_answer(exc):
            raise classify_model_error(exc) from exc
        usage.add(_usage_of_failure(exc))
        return None, _why_unusable(exc), ""
    finally:
        usage.latency_ms += (time.perf_counter() - started) * 1000
    raw = answer.get("raw")
    usage.add(usage_of(raw))
    parsed, error = answer.get("parsed"), answer.get("parsing_error")
    if isinstance(parsed, schema) and error is None:
        return parsed, "", ""
    return None, _describe(error, raw), _shown_answer(raw)


def _re_ask(name: str, problem: str, shown: str) -> HumanMessage:
    previous = f"Previous answer: {shown}\n" if shown else ""
    shorter = " Keep it shorter." if problem == CUT_OFF else ""
    return HumanMessage(
        content=f"Your previous answer did not validate against `{name}`: {problem}\n"
        f"{previous}Answer with `{name}` again, with every field valid.{shorter}"
    )


def invoke_structured(
    model: BaseChatModel, schema: type[T], messages: Sequence[BaseMessage]
) -> tuple[T, Usage]:
    """Ask ``model`` for a ``schema`` instance; re-ask once with the validation errors.

    A second unusable answer (invalid, unparseable, cut off at the token limit)
    raises ``ModelError``, which is retryable: invalid structured output is a
    sampling accident of the model, not a property of the input (the input was
    validated before), so a later attempt within the retry budget usually
    succeeds, and the engine re-runs only this phase.  The error names what was
    wrong, never the answer itself, and is not chained to the provider's
    exception, whose text quotes the answer.
    """
    usage = Usage()
    conversation = list(messages)
    problem = ""
    remember_secrets(model)
    runnable = _structured(model, schema)
    for _attempt in range(2):
        parsed, problem, shown = _ask(runnable, schema, conversation, usage)
        if parsed is not None:
            return parsed, usage
        conversation = [*messages, _re_ask(schema.__name__, problem, shown)]
    raise ModelError(
        redact(f"{schema.__name__}: invalid structured output after one re-ask: {problem}"),
        schema=schema.__name__,
        usage=usage.__dict__,
    )
