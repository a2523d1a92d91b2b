"""Any OpenAI-compatible chat server (vLLM, llama.cpp's server, TGI, ...) as a LangChain chat model.

``OpenAICompatibleChatModel(model="google/medgemma-27b-text-it", base_url="http://host:8000/v1")``
sends ``/v1/chat/completions`` through the official ``openai`` client and returns the raw text.

Gemma has no system role and its chat template rejects turns that do not alternate, so by default
(``merge_system=True``) the system text is folded into the first user turn, tool results become
user turns and consecutive same-role messages are merged, with exactly the text
``gemma_format.to_turns`` gives the local backends. llama.cpp's "gemma" chat format silently DROPS
system messages, and Gemma's Jinja template raises on roles that do not alternate.

``invoke(messages, json_schema={...})`` constrains the output to the schema. Servers disagree on
how to ask for that (``structured_output``):
  json_schema   OpenAI/vLLM: response_format={"type": "json_schema", "json_schema": {"name", "schema", "strict"}}
  json_object   llama.cpp:   response_format={"type": "json_object", "schema": {...}}
  none          send no response_format (the parser and a repair turn take over)
  auto          json_schema first; on an HTTP 400/500 that names response_format, json_object once,
                remembered for the rest of this model's life.

A server that cannot compile the schema into a grammar (an HTTP 4xx/5xx naming the grammar or
response_format, or the connection dropped while it compiled: llama-cpp-python's server process
dies on a grammar its parser rejects) costs one request: the same request is sent again without
response_format, and every later call of this model goes unconstrained (the planner's parser and
repair turn take over). Such a reply says so in ``response_metadata``: ``constrained`` False and
``grammar_note`` "server refused the grammar: ..." (the planner copies both into the trace).

``openai`` is imported lazily, so ``normalize_turns`` can be reused without it installed.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from .gemma_format import IMAGE_TOKEN, MODEL, USER, content_text, to_turns

StructuredOutput = Literal["json_schema", "json_object", "none", "auto"]


class OpenAICompatError(RuntimeError):
    """A problem with the server (unreachable, unknown model, HTTP error), said in words.

    ``status_code`` is the HTTP status when the server answered (None when it could not be reached).
    """

    def __init__(self, message: str, status_code: int | None = None, server_message: str = "", *,
                 dropped: bool = False, reason: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.server_message = server_message
        self.dropped = dropped    # the server accepted the request, then closed the connection unanswered
        self.reason = reason


# --------------------------------------------------------------------------- messages

def _images(message: BaseMessage) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return []
    return [b for b in message.content if isinstance(b, dict) and b.get("type") in ("image", "image_url")]


def normalize_turns(messages: list[BaseMessage], merge_system: bool = True) -> list[tuple[str, list[dict[str, Any]]]]:
    """The conversation as Gemma accepts it: ``[(role, blocks)]``, roles ``user``/``assistant``
    alternating from ``user`` (plus a leading ``system`` turn when ``merge_system`` is False),
    blocks ``{"type": "text"}`` and the messages' own image blocks, in order.

    The text is exactly ``gemma_format.to_turns``'s (system folded into the first user turn, tool
    results as ``tool_output`` fences, consecutive roles merged, control tokens defused), so every
    backend shows the model the same conversation. An empty user turn closes a conversation that
    ends with the model, as ``to_gemma_prompt`` does (the server then opens the model's turn).
    """
    messages = list(messages)
    lead: list[tuple[str, list[dict[str, Any]]]] = []
    if not merge_system and messages and messages[0].type == "system":
        lead = [("system", [{"type": "text", "text": content_text(messages[0].content)}])]
        messages = messages[1:]
    images = [block for m in messages for block in _images(m)]
    turns = to_turns(messages)
    if turns[-1][0] == MODEL:
        turns.append((USER, ""))
    out = list(lead)
    pending = iter(images)
    found = 0
    for role, text in turns:
        pieces = text.split(IMAGE_TOKEN)
        found += len(pieces) - 1
        blocks: list[dict[str, Any]] = []
        for k, piece in enumerate(pieces):
            if k:
                blocks.append(next(pending, {"type": "text", "text": IMAGE_TOKEN}))
            if piece or len(pieces) == 1:
                blocks.append({"type": "text", "text": piece})
        out.append(("assistant" if role == MODEL else "user", blocks))
    if found != len(images):
        raise ValueError(f"the messages hold {len(images)} image(s) but their text {found} '{IMAGE_TOKEN}' marker(s): "
                         "remove the literal marker from the text")
    return out


def _openai_part(block: dict[str, Any]) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "image_url":
        return block
    if kind == "image":
        if block.get("url"):
            return {"type": "image_url", "image_url": {"url": block["url"]}}
        data = block.get("base64") or block.get("data")
        if data:
            mime = block.get("mime_type") or "image/png"
            return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
    raise OpenAICompatError(f"openai: cannot send this '{kind}' content block to an OpenAI-compatible server "
                            "(give images as base64 or a URL)")


def to_openai_messages(messages: list[BaseMessage], merge_system: bool = True) -> list[dict[str, Any]]:
    out = []
    for role, blocks in normalize_turns(messages, merge_system):
        if all(b.get("type") == "text" for b in blocks):
            content: Any = "".join(b["text"] for b in blocks)
        else:
            content = [_openai_part(b) for b in blocks]
        out.append({"role": role, "content": content})
    return out


# --------------------------------------------------------------------------- errors

def _reason(exc: BaseException) -> str:
    """The innermost useful cause of a connection error ('connection refused', 'timed out', ...)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    last = str(exc)
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cur, TimeoutError) or "timed out" in str(cur).lower() or "timeout" in type(cur).__name__.lower():
            return "timed out"
        if str(cur):
            last = str(cur)
        cur = cur.__cause__ or cur.__context__
    return "connection refused" if "refused" in last.lower() else last


def _error_text(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)
        return str(err)
    if body:
        return str(body)
    return str(getattr(exc, "message", "") or exc)


def _names_response_format(text: str) -> bool:
    text = text.lower()
    return "response_format" in text or "json_schema" in text


_GRAMMAR_WORDS = ("grammar", "response_format", "json_schema", "json schema", "guided", "structured output",
                  "xgrammar", "guidance", "outlines", "gbnf")


def _names_grammar(text: str) -> bool:
    text = text.lower()
    return any(w in text for w in _GRAMMAR_WORDS)


GRAMMAR_REFUSED = "server refused the grammar: "


def _collect_stream(stream: Any, run_manager: CallbackManagerForLLMRun | None, base_url: str) -> Any:
    """A streamed reply as one response object (text, finish reason, model, usage), each piece
    passed to ``run_manager.on_llm_new_token`` as it arrives."""
    import openai
    from types import SimpleNamespace

    pieces: list[str] = []
    finish, model, usage = None, None, None
    try:
        for chunk in stream:
            model = chunk.model or model
            usage = chunk.usage or usage
            for choice in chunk.choices or []:
                finish = choice.finish_reason or finish
                piece = choice.delta.content if choice.delta is not None else None
                if piece:
                    pieces.append(piece)
                    if run_manager is not None:
                        run_manager.on_llm_new_token(piece)
    except openai.APIError as exc:
        raise OpenAICompatError(f"OpenAI-compatible server at {base_url} stopped while streaming: {_reason(exc)}") from exc
    finally:
        stream.close()
    message = SimpleNamespace(content="".join(pieces))
    return SimpleNamespace(choices=[SimpleNamespace(message=message, finish_reason=finish)], model=model, usage=usage)


def _list_models(client: Any) -> list[str]:
    return sorted(m.id for m in client.models.list().data)


def check_server(base_url: str, api_key: str | None = None, timeout: float = 5, *,
                 http_client: Any = None) -> dict[str, Any]:
    """``GET {base_url}/models``: ``{"base_url", "models": [ids], "latency_s"}``, or OpenAICompatError."""
    import openai

    base_url = base_url.rstrip("/")
    client = openai.OpenAI(base_url=base_url, api_key=_resolve_key(api_key), timeout=timeout, max_retries=0,
                           http_client=http_client)
    started = time.monotonic()
    try:
        models = _list_models(client)
    except openai.APIConnectionError as exc:
        raise OpenAICompatError(f"cannot reach OpenAI-compatible server at {base_url}: {_reason(exc)}") from exc
    except openai.APIStatusError as exc:
        raise OpenAICompatError(f"OpenAI-compatible server at {base_url} answered HTTP {exc.status_code} to "
                                f"GET /models: {_error_text(exc)} (does the base URL end with /v1?)") from exc
    return {"base_url": base_url, "models": models, "latency_s": round(time.monotonic() - started, 3)}


def _resolve_key(api_key: str | None) -> str:
    return api_key or os.environ.get("MEDAGENT_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"


# --------------------------------------------------------------------------- the model

class OpenAICompatibleChatModel(BaseChatModel):
    """A served model behind ``/v1/chat/completions``; ``content`` is the raw text."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = Field(description="Model name as the server lists it (vLLM: the HF id; llama.cpp: any)")
    base_url: str = Field(description="Server base URL including /v1, e.g. http://127.0.0.1:8000/v1")
    api_key: SecretStr | None = Field(None, description="Defaults to $MEDAGENT_OPENAI_API_KEY, $OPENAI_API_KEY, 'EMPTY'")
    timeout: float = Field(120.0, description="Seconds per request")
    max_retries: int = Field(2, description="Retries for connection errors, 408/409/429 and 5xx")
    retry_backoff_s: float = Field(0.5, description="First retry delay; doubles per retry, capped at 8 s")
    max_tokens: int | None = Field(2048, description="Most new tokens per call (MedGemma thinking needs 1300-2000)")
    temperature: float = 0.0
    structured_output: StructuredOutput = "auto"
    schema_name: str = "action"
    merge_system: bool = Field(True, description="Fold system text into the first user turn (Gemma has no system role)")
    extra_body: dict[str, Any] | None = Field(None, description="Extra request fields (e.g. vLLM's chat_template_kwargs)")
    http_client: Any = Field(None, exclude=True, description="An httpx client for the openai client (tests, proxies)")
    streaming: bool = Field(False, description="Ask the server to stream; each piece goes to the callbacks' "
                                               "on_llm_new_token as it arrives (the chat shows the answer growing)")

    supports_json_schema: bool = True

    _client: Any = PrivateAttr(None)
    _resolved_mode: str | None = PrivateAttr(None)  # what 'auto' settled on
    _grammar_refused: str | None = PrivateAttr(None)  # why the server cannot take a schema: unconstrained from then on

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url, "structured_output": self.structured_output,
                "merge_system": self.merge_system}

    @property
    def client(self) -> Any:
        if self._client is None:
            import openai

            key = self.api_key.get_secret_value() if self.api_key else None
            # Retries are ours (below): the client's own would retry llama.cpp's 500 on json_schema too.
            self._client = openai.OpenAI(base_url=self.base_url.rstrip("/"), api_key=_resolve_key(key),
                                         timeout=self.timeout, max_retries=0, http_client=self.http_client)
        return self._client

    @property
    def structured_mode(self) -> str:
        """The response_format form sent with a json_schema (auto: json_schema until a server refuses it)."""
        if self.structured_output == "auto":
            return self._resolved_mode or "json_schema"
        return self.structured_output

    def _response_format(self, mode: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": self.schema_name, "schema": schema, "strict": True}}
        if mode == "json_object":
            return {"type": "json_object", "schema": schema}
        return None

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        schema = kwargs.pop("json_schema", None)
        request: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(messages, self.merge_system),
                                   "temperature": kwargs.pop("temperature", self.temperature)}
        max_tokens = kwargs.pop("max_tokens", self.max_tokens)
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        if stop:
            request["stop"] = stop
        if self.extra_body:
            request["extra_body"] = dict(self.extra_body)
        mode = self.structured_mode if schema is not None else "none"
        if self._grammar_refused is not None:
            mode = "none"
        if schema is not None and mode != "none":
            request["response_format"] = self._response_format(mode, schema)
        if self.streaming:
            request.update(stream=True, stream_options={"include_usage": True})

        started = time.monotonic()
        note = self._grammar_refused
        try:
            response = self._create(request)
        except OpenAICompatError as exc:
            if "response_format" not in request:
                raise
            if (self.structured_output == "auto" and mode == "json_schema" and exc.status_code in (400, 500)
                    and _names_response_format(exc.server_message)):
                # The server does not take the OpenAI form: llama.cpp's form, once, and remember it.
                mode = "json_object"
                request["response_format"] = self._response_format(mode, schema)
                try:
                    response = self._create(request)
                    self._resolved_mode = mode
                except OpenAICompatError as again:
                    response, mode, note = self._without_grammar(request, again)
            else:
                response, mode, note = self._without_grammar(request, exc)
        if self.streaming:
            response = _collect_stream(response, run_manager, self.base_url)
        latency = time.monotonic() - started

        choice = response.choices[0] if response.choices else None
        text = (choice.message.content if choice is not None else None) or ""
        metadata: dict[str, Any] = {
            "model": response.model or self.model, "model_name": response.model or self.model,
            "base_url": self.base_url, "latency_s": round(latency, 3),
            "finish_reason": choice.finish_reason if choice is not None else None,
            "structured_output": mode if schema is not None else None,
            "constrained": schema is not None and mode != "none",
        }
        if schema is not None and note:
            metadata["grammar_note"] = note
        usage = None
        if response.usage is not None:
            prompt = response.usage.prompt_tokens or 0
            completion = response.usage.completion_tokens or 0
            usage = {"input_tokens": prompt, "output_tokens": completion,
                     "total_tokens": response.usage.total_tokens or prompt + completion}
        message = AIMessage(content=text, usage_metadata=usage, response_metadata=metadata)
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"model": metadata["model"]})

    def _without_grammar(self, request: dict[str, Any], exc: OpenAICompatError) -> tuple[Any, str, str]:
        """After a refused grammar: the same request without response_format, and no grammar for
        the rest of this model's life. Other errors are raised as they were."""
        if exc.status_code is not None and not (400 <= exc.status_code < 600 and _names_grammar(exc.server_message)):
            raise exc
        if exc.status_code is None and not exc.dropped:  # refused or timed out before it could compile
            raise exc
        reason = (f"HTTP {exc.status_code}: {exc.server_message.strip()[:300]}" if exc.status_code is not None
                  else f"the connection dropped while the server compiled it ({exc.reason})")
        self._grammar_refused = GRAMMAR_REFUSED + reason + "; unconstrained output, parser and repair turn from now on"
        request.pop("response_format", None)
        try:
            response = self._create(request)
        except OpenAICompatError as after:
            if exc.status_code is None:  # llama-cpp-python's server process dies on a grammar it cannot parse
                raise OpenAICompatError(
                    f"{after} (it stopped answering after a request with a JSON-schema grammar: llama-cpp-python's "
                    f"server dies on grammars it cannot compile; restart it, or run without constrained decoding)",
                    after.status_code, after.server_message) from after
            raise
        return response, "none", self._grammar_refused

    # -- one request, with retries and errors in words

    def _create(self, request: dict[str, Any]) -> Any:
        import openai

        attempt = 0
        while True:
            try:
                return self.client.chat.completions.create(**request)
            except openai.APITimeoutError as exc:
                # Not retried: a generation that ran out of time would run out of time again.
                raise OpenAICompatError(f"OpenAI-compatible server at {self.base_url} did not answer within "
                                        f"{self.timeout:g} s (model '{self.model}'); raise the timeout") from exc
            except openai.APIConnectionError as exc:
                reason = _reason(exc)
                if "response_format" in request and reason != "connection refused":
                    # The server took the request and dropped the connection: with a grammar, that is
                    # the grammar (llama.cpp's server process exits on one it cannot parse); no retry.
                    raise OpenAICompatError(f"OpenAI-compatible server at {self.base_url} dropped the connection: "
                                            f"{reason}", dropped=True, reason=reason) from exc
                if attempt >= self.max_retries:
                    raise OpenAICompatError(f"cannot reach OpenAI-compatible server at {self.base_url}: "
                                            f"{reason}", reason=reason) from exc
                delay = self._delay(attempt, None)
            except openai.NotFoundError as exc:
                raise self._not_found(exc) from exc
            except openai.APIStatusError as exc:
                status, text = exc.status_code, _error_text(exc)
                retryable = status in (408, 409, 429) or status >= 500
                format_refused = 400 <= status < 600 and "response_format" in request and _names_grammar(text)
                if not retryable or format_refused or attempt >= self.max_retries:
                    raise OpenAICompatError(f"OpenAI-compatible server at {self.base_url} answered HTTP {status} "
                                            f"for model '{self.model}': {text}", status, text) from exc
                delay = self._delay(attempt, exc.response)
            attempt += 1
            time.sleep(delay)

    def _delay(self, attempt: int, response: Any) -> float:
        if response is not None:
            headers = response.headers
            for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
                try:
                    value = float(headers.get(name)) * scale
                except (TypeError, ValueError):
                    continue
                if 0 <= value <= 60:
                    return value
        return min(self.retry_backoff_s * 2 ** attempt, 8.0) * (0.75 + random.random() / 2)

    def _not_found(self, exc: Any) -> OpenAICompatError:
        message = (f"model '{self.model}' not found at {self.base_url} (HTTP 404: {_error_text(exc)})")
        try:
            models = _list_models(self.client)
        except Exception as list_exc:  # noqa: BLE001 - only used to enrich the message
            return OpenAICompatError(f"{message}; GET /models failed too ({type(list_exc).__name__}): "
                                     "does the base URL end with /v1?", 404, _error_text(exc))
        listed = ", ".join(models) if models else "none"
        return OpenAICompatError(f"{message}; the server lists: {listed}", 404, _error_text(exc))
