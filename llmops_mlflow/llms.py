"""Chat model providers: SmolLM2 in-process through llama.cpp, or any OpenAI-compatible API."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from llmops_mlflow import assets
from llmops_mlflow.config import LLMConfig
from llmops_mlflow.errors import ConfigError

logger = logging.getLogger(__name__)

LOCAL_MODELS = {"smollm2-135m-instruct": assets.smollm2_gguf}
_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


@functools.cache
def _llama(model_path: str, n_ctx: int, threads: int) -> Any:
    from llama_cpp import Llama

    logger.info("loading local model %s", model_path)
    return Llama(model_path=model_path, n_ctx=n_ctx, n_threads=threads, verbose=False)


# One llama.cpp context is not safe to share between threads.
_LLAMA_LOCK = threading.Lock()


class LocalChatModel(BaseChatModel):
    """A GGUF chat model run in-process; usage counts come from llama.cpp itself."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str
    model_path: str
    temperature: float = 0.0
    max_tokens: int = 128
    seed: int | None = 0
    n_ctx: int = 2048
    threads: int = 2

    @property
    def _llm_type(self) -> str:
        return "llmops-local-llama"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model_name, "path": self.model_path}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        payload = [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages]
        llama = _llama(self.model_path, self.n_ctx, self.threads)
        with _LLAMA_LOCK:
            response = llama.create_chat_completion(
                messages=payload,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                seed=self.seed,
                stop=stop,
            )
        usage = response["usage"]
        message = AIMessage(
            content=response["choices"][0]["message"]["content"] or "",
            usage_metadata={
                "input_tokens": usage["prompt_tokens"],
                "output_tokens": usage["completion_tokens"],
                "total_tokens": usage["total_tokens"],
            },
            response_metadata={"finish_reason": response["choices"][0].get("finish_reason")},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def _make_local(config: LLMConfig) -> BaseChatModel:
    if config.model not in LOCAL_MODELS:
        raise ConfigError(
            f"local model {config.model!r} is not packaged; choose one of "
            f"{sorted(LOCAL_MODELS)} or use provider 'openai' with a base_url"
        )
    return LocalChatModel(
        model_name=config.model,
        model_path=str(LOCAL_MODELS[config.model]()),
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        seed=config.seed,
        n_ctx=config.n_ctx,
        threads=min(2, os.cpu_count() or 1),
    )


def _make_openai(config: LLMConfig) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    from llmops_mlflow.secrets import api_key

    return ChatOpenAI(
        model=config.model,
        base_url=config.base_url,
        api_key=api_key(config.api_key_env, config.base_url),
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        seed=config.seed,
        timeout=config.timeout_s,
        # The openai client retries 429, 5xx, timeouts and dropped connections with
        # exponential backoff and jitter, and honours Retry-After.
        max_retries=config.max_retries,
    )


PROVIDERS: dict[str, Callable[[LLMConfig], BaseChatModel]] = {
    "local": _make_local,
    "openai": _make_openai,
}


def model_identity(config: LLMConfig) -> dict[str, str]:
    """What identifies the model's weights and runtime, for cache keys and run tags."""
    if config.provider == "local" and config.model in LOCAL_MODELS:
        from importlib.metadata import version

        path = LOCAL_MODELS[config.model]()
        return {
            "model": f"local:{config.model}",
            "weights": f"{path.name}:{path.stat().st_size}",
            "runtime": f"llama-cpp-python=={version('llama-cpp-python')}",
        }
    # A remote endpoint reports no weights version; the model name and endpoint are all we know.
    return {"model": f"{config.provider}:{config.model}", "endpoint": config.base_url or "default"}


def is_deterministic(config: LLMConfig) -> bool:
    """Greedy decoding, or sampling with a fixed seed: a cached result is a faithful replay."""
    return config.temperature == 0 or config.seed is not None


def get_chat_model(config: LLMConfig) -> BaseChatModel:
    """The chat model registered under `config.provider`."""
    try:
        factory = PROVIDERS[config.provider]
    except KeyError as err:
        raise ConfigError(
            f"unknown llm provider {config.provider!r}; choose one of {sorted(PROVIDERS)}"
        ) from err
    return factory(config)
