"""API keys come from the environment or a secret file it names, never from a config file."""

from __future__ import annotations

import os
from pathlib import Path

from llmops_mlflow.errors import ConfigError

# Self-hosted OpenAI-compatible servers (vLLM, llama.cpp, Ollama) ignore the key, but the
# client insists on one.
UNUSED_KEY = "not-needed"


def api_key(env_var: str, base_url: str | None) -> str:
    """The key in `env_var`, else in the file named by `<env_var>_FILE` (as Docker and
    Kubernetes mount secrets); a custom `base_url` may run without one."""
    value = os.environ.get(env_var, "").strip()
    where = env_var
    if not value and (path := os.environ.get(f"{env_var}_FILE", "").strip()):
        where = f"the file {path} named in {env_var}_FILE"
        value = _read_secret(Path(path), f"{env_var}_FILE")
    if value:
        return _checked(value, where)
    if base_url:
        return UNUSED_KEY
    raise ConfigError(
        f"environment variable {env_var} is not set; export the API key there, or name a file "
        f"holding it in {env_var}_FILE (keys are never read from sweep files), or set base_url "
        "for a self-hosted endpoint"
    )


def _read_secret(path: Path, variable: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"{variable} names {path}, which cannot be read ({type(err).__name__}); "
            "point it at a UTF-8 file holding only the key"
        ) from err
    if not value:
        raise ConfigError(f"{variable} names {path}, which is empty; put the key in it")
    return value


def _checked(value: str, where: str) -> str:
    """A key with a line break or a space cannot go into an HTTP header: every call would fail
    as a bare 'Connection error.' The message names where the key came from, never the key."""
    if any(char.isspace() or not char.isprintable() for char in value):
        lines = len(value.splitlines())
        raise ConfigError(
            f"the API key in {where} contains whitespace or control characters ({lines} "
            "line(s)); keep only the key itself there"
        )
    return value
