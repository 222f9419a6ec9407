"""API keys come from the environment only, never from a config file."""

from __future__ import annotations

import os

from llmops_mlflow.errors import ConfigError

# Self-hosted OpenAI-compatible servers (vLLM, llama.cpp, Ollama) ignore the key, but the
# client insists on one.
UNUSED_KEY = "not-needed"


def api_key(env_var: str, base_url: str | None) -> str:
    """Read the key named by `env_var`; a custom `base_url` may run without one."""
    value = os.environ.get(env_var, "").strip()
    if value:
        return value
    if base_url:
        return UNUSED_KEY
    raise ConfigError(
        f"environment variable {env_var} is not set; export the API key there "
        "(keys are never read from sweep files), or set base_url for a self-hosted endpoint"
    )
