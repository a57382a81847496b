"""Pluggable LLMs for the query engine: one small interface over the kinds of models people already have.

The query engine only needs "prompt in, text out", sync and async. Users arrive with a plain function, a
LangChain model, a LlamaIndex LLM or an OpenAI-compatible server (vLLM, Ollama, llama.cpp, a hosted API);
`as_llm` wraps each in an `LLM`, so the engine never branches on where the model came from. The
frameworks are optional extras: an object can only be one of theirs if its framework is already imported,
so they are recognised without importing them.
"""

from __future__ import annotations

import asyncio
import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import httpx

from ragkit.config import env
from ragkit.errors import InputError, RagkitError

LLM_ENVIRONMENT_VARIABLES = {
    "RAGKIT_LLM_URL": "OpenAI-compatible base URL for `ragkit query` answers, e.g. http://localhost:8000/v1",
    "RAGKIT_LLM_MODEL": "model name sent to that server (default: default)",
    "RAGKIT_LLM_API_KEY": "bearer token for that server, if it wants one",
    "RAGKIT_LLM_TIMEOUT": "seconds to wait for that server's answer (default: 120)",
}
DEFAULT_TIMEOUT = 120.0


class LLMError(RagkitError):
    """The LLM could not be reached, refused the request, or answered something that is not text."""


class LLM(ABC):
    """Prompt in, text out. Subclasses implement `complete`; `acomplete` defaults to a worker thread."""

    @abstractmethod
    def complete(self, prompt: str) -> str: ...

    async def acomplete(self, prompt: str) -> str:
        return await asyncio.to_thread(self.complete, prompt)


class CallableLLM(LLM):
    """Any `prompt -> str` function: the simplest way to plug in a model, and a scripted one in tests."""

    def __init__(self, function: Callable[[str], str]) -> None:
        self.function = function

    def complete(self, prompt: str) -> str:
        return _text(self.function(prompt), self.function)


class LangChainLLM(LLM):
    """A LangChain chat model or LLM, or any runnable over one (`model.with_retry()`, `.bind(stop=...)`,
    `.with_fallbacks([...])`, `prompt | model | StrOutputParser()`); its reply, a message or a string, is
    reduced to text, and any other output is an LLMError."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def complete(self, prompt: str) -> str:
        return self._reply_text(self.model.invoke(prompt))

    async def acomplete(self, prompt: str) -> str:
        return self._reply_text(await self.model.ainvoke(prompt))

    def _reply_text(self, reply: Any) -> str:
        from langchain_core.messages import BaseMessage

        return _text(reply.text if isinstance(reply, BaseMessage) else reply, self.model)


class LlamaIndexLLM(LLM):
    """A LlamaIndex LLM, through its completion API (chat-only models adapt themselves there)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def complete(self, prompt: str) -> str:
        return _text(self.model.complete(prompt).text, self.model)

    async def acomplete(self, prompt: str) -> str:
        return _text((await self.model.acomplete(prompt)).text, self.model)


class OpenAICompatibleLLM(LLM):
    """POST {url}/chat/completions, as served by OpenAI, vLLM, Ollama, llama.cpp and most gateways.

    Temperature 0: a grounded answer should not vary between runs of the same question.
    """

    def __init__(
        self,
        url: str,
        *,
        model: str = "default",
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = _checked_url(url).rstrip("/")
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = _checked_timeout(timeout)

    @classmethod
    def from_env(
        cls, *, url: str | None = None, model: str | None = None, timeout: float | None = None
    ) -> OpenAICompatibleLLM | None:
        """The server in RAGKIT_LLM_URL (RAGKIT_LLM_MODEL, RAGKIT_LLM_API_KEY, RAGKIT_LLM_TIMEOUT), `url`,
        `model` and `timeout` overriding.

        None when no URL is given anywhere; the API key is only read from the environment, so it stays
        out of shell histories and process lists.
        """
        url = url or env("RAGKIT_LLM_URL")
        if url is None:
            return None
        return cls(
            url,
            model=model or env("RAGKIT_LLM_MODEL") or "default",
            api_key=env("RAGKIT_LLM_API_KEY"),
            timeout=_env_timeout() if timeout is None else timeout,
        )

    def complete(self, prompt: str) -> str:
        try:
            with httpx.Client(timeout=self._timeout) as client:
                response = client.post(**self._request(prompt))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._unreachable(exc) from exc
        return self._parse(response)

    async def acomplete(self, prompt: str) -> str:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(**self._request(prompt))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._unreachable(exc) from exc
        return self._parse(response)

    def _request(self, prompt: str) -> dict[str, Any]:
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
        return {"url": f"{self.url}/chat/completions", "json": body, "headers": self._headers}

    def _unreachable(self, exc: httpx.HTTPError | httpx.InvalidURL) -> LLMError:
        if isinstance(exc, httpx.TimeoutException):
            return LLMError(
                f"the LLM at {self.url} did not answer within {self._timeout:g}s ({type(exc).__name__}); "
                "a long context on a slow model may need a larger one (RAGKIT_LLM_TIMEOUT or --llm-timeout)"
            )
        return LLMError(
            f"cannot reach the LLM at {self.url}: {type(exc).__name__}: {exc}. "
            "Check the URL (RAGKIT_LLM_URL or --llm-url) and that the server is running"
        )

    def _parse(self, response: httpx.Response) -> str:
        if response.is_error:
            raise LLMError(
                f"the LLM at {self.url} answered HTTP {response.status_code} {response.reason_phrase}: "
                f"{response.text[:500]}"
            )
        try:
            return _text(response.json()["choices"][0]["message"]["content"], self.url)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(
                f"the LLM at {self.url} answered something that is not an OpenAI chat completion: "
                f"{response.text[:500]}"
            ) from exc


def as_llm(llm: Any) -> LLM | None:
    """Wrap whatever the user passed; None means the server in RAGKIT_LLM_URL, or no LLM at all."""
    if llm is None:
        return OpenAICompatibleLLM.from_env()
    if isinstance(llm, LLM):
        return llm
    if "langchain_core" in sys.modules:
        # Runnable, not BaseLanguageModel: LangChain's own wrappers of a model are runnables, not models.
        from langchain_core.runnables import Runnable

        if isinstance(llm, Runnable):
            return LangChainLLM(llm)
    if "llama_index.core" in sys.modules:
        from llama_index.core.llms import LLM as LlamaIndexBase

        if isinstance(llm, LlamaIndexBase):
            return LlamaIndexLLM(llm)
    if callable(llm):
        return CallableLLM(llm)
    raise InputError(
        f"llm must be a function prompt -> str, a LangChain chat model or runnable, a LlamaIndex LLM or a "
        f"ragkit.llm.LLM, got {type(llm).__name__}"
    )


def _checked_url(url: str) -> str:
    """`url` if httpx can send to it: checked here, so a typo is named before any retrieval is done."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InputError(f"LLM url {url!r} is not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InputError(f"LLM url {url!r} must be http:// or https:// followed by a host")
    # httpx takes both, and fails later with a name lookup or a connection error that hides the typo.
    if any(char.isspace() for char in url):
        raise InputError(f"LLM url {url!r} is not a valid URL: it contains whitespace")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise InputError(f"LLM url {url!r} is not a valid URL: port {parsed.port} is not 1-65535")
    return url


def _checked_timeout(timeout: Any) -> float:
    """Seconds, positive and finite: httpx would take 0 or a negative as "fail at once" and NaN as never."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
        raise InputError(
            f"the LLM timeout must be a positive number of seconds (RAGKIT_LLM_TIMEOUT or --llm-timeout), "
            f"got {timeout!r}"
        )
    return float(timeout)


def _env_timeout() -> float:
    value = env("RAGKIT_LLM_TIMEOUT")
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        return float(value)
    except ValueError:
        raise InputError(f"RAGKIT_LLM_TIMEOUT must be a number of seconds, got {value!r}") from None


def _text(answer: Any, origin: Any) -> str:
    if not isinstance(answer, str):
        raise LLMError(f"the LLM {origin!r} returned {type(answer).__name__}, not text")
    return answer
