"""Prompt templates: text files with `{question}` and `{context}`, checked before any call."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from llmops_mlflow.errors import ConfigError

REQUIRED_VARIABLES = frozenset({"question", "context"})
TEMPLATE_SUFFIX = ".txt"


@dataclass(frozen=True)
class PromptTemplate:
    """A validated template; `render` can only substitute the two plain variables."""

    path: Path
    text: str

    def render(self, question: str, context: str) -> str:
        return self.text.format(question=question, context=context)


def load_template(name_or_path: str, prompts_dir: Path) -> tuple[Path, str]:
    """Find a template by name (a file in `prompts_dir`) or path and validate it."""
    path = _locate(name_or_path, prompts_dir)
    try:
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"prompt template {path} is not UTF-8 text (byte {err.start}: {err.reason}); "
            "re-save it as UTF-8"
        ) from err
    except OSError as err:
        raise ConfigError(f"prompt template {path} cannot be read ({err.strerror})") from err
    validate(text, path)
    return path, text


def _locate(name_or_path: str, prompts_dir: Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == TEMPLATE_SUFFIX and candidate.is_file():
        return candidate
    named = prompts_dir / f"{name_or_path}{TEMPLATE_SUFFIX}"
    if named.is_file():
        return named
    for path in (candidate, named):
        if path.suffix == TEMPLATE_SUFFIX and path.is_dir():
            raise ConfigError(f"prompt template {path} is a folder; name a text file")
    available = sorted(p.stem for p in prompts_dir.glob(f"*{TEMPLATE_SUFFIX}") if p.is_file())
    raise ConfigError(
        f"prompt {name_or_path!r} not found: no file {named}; "
        f"templates in {prompts_dir}: {', '.join(available) or 'none'}"
    )


def validate(text: str, path: Path) -> None:
    """Fail on unknown, missing or non-plain variables (no attribute or index access)."""
    if not text.strip():
        raise ConfigError(
            f"prompt template {path} is empty; write the prompt, with {{context}} and "
            "{question} where they belong"
        )
    try:
        fields = [
            (f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text) if f is not None
        ]
    except ValueError as err:
        raise ConfigError(
            f"prompt template {path}: {err}; write a literal brace as '{{{{' or '}}}}'"
        ) from err
    for field, spec, conv in fields:
        if not field.isidentifier():
            raise ConfigError(
                f"prompt template {path}: variable {{{field}}} is not allowed; use only "
                "{question} and {context}, without attributes, indexes or positions"
            )
        if spec or conv:
            raise ConfigError(
                f"prompt template {path}: {{{field}}} has a format spec or conversion; "
                "write the variable plainly"
            )
    _check_variables({field for field, _, _ in fields}, path)


def _check_variables(found: set[str], path: Path) -> None:
    extra = found - REQUIRED_VARIABLES
    missing = REQUIRED_VARIABLES - found
    if extra:
        raise ConfigError(
            f"prompt template {path} uses unknown variable(s) {sorted(extra)}; "
            f"the chain provides only {sorted(REQUIRED_VARIABLES)}"
        )
    if missing:
        raise ConfigError(
            f"prompt template {path} is missing variable(s) {sorted(missing)}; "
            "a RAG prompt must place both the retrieved {context} and the {question}"
        )
