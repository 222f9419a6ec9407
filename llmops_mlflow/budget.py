"""Spending before it happens: per-config estimates for `--dry-run`, and the hard budget cap."""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass

from llmops_mlflow.config import ChunkingConfig, ResolvedConfig
from llmops_mlflow.cost import Pricing
from llmops_mlflow.documents import Corpus, chunk_corpus
from llmops_mlflow.errors import CheckFailed, ConfigError

logger = logging.getLogger(__name__)


class BudgetExceeded(CheckFailed):
    """The next call could cross `budget_usd`; the sweep stops and keeps what it finished."""


@dataclass(frozen=True)
class ChunkStats:
    """Token counts of a corpus's chunks under one chunking."""

    mean_tokens: float
    max_tokens: int


def count_tokens(text: str) -> int:
    """Tokens under cl100k_base: the estimate for any model without its own tokenizer here."""
    return len(_encoding().encode(text, disallowed_special=()))


@functools.cache
def _encoding():
    import tiktoken

    from llmops_mlflow.assets import ensure_tiktoken_cache

    ensure_tiktoken_cache()
    return tiktoken.get_encoding("cl100k_base")


def chunk_stats(corpus: Corpus, chunking: ChunkingConfig) -> ChunkStats:
    """Split the corpus (no embedding, no cost) and measure its chunks in tokens."""
    counts = [count_tokens(c.text) for c in chunk_corpus(corpus, chunking)]
    return ChunkStats(sum(counts) / len(counts), max(counts))


@dataclass(frozen=True)
class CallEstimate:
    """Tokens of one question's call: expected and an upper bound."""

    prompt_tokens: float
    prompt_tokens_max: int
    completion_tokens_max: int


def estimate_call(resolved: ResolvedConfig, question: str, stats: ChunkStats) -> CallEstimate:
    """The prompt is the template, the question and k chunks; the answer at most max_tokens."""
    fixed = count_tokens(resolved.prompt_text) + count_tokens(question)
    k = resolved.config.retriever.k
    return CallEstimate(
        prompt_tokens=fixed + k * stats.mean_tokens,
        prompt_tokens_max=fixed + k * stats.max_tokens,
        completion_tokens_max=resolved.config.llm.max_tokens,
    )


class Budget:
    """A hard cap on spend: each call reserves its worst case first and settles its real cost."""

    def __init__(self, cap_usd: float | None) -> None:
        self.cap_usd = cap_usd
        self.spent_usd = 0.0
        self._reserved = 0.0
        self._lock = threading.Lock()

    def check_priced(self, name: str, pricing: Pricing) -> None:
        """A budget cannot be enforced on a model whose price is unknown."""
        if self.cap_usd is not None and not pricing.known:
            raise ConfigError(
                f"budget_usd is set but config {name!r} has no known price, so spending "
                "cannot be capped; state llm.price for it or remove budget_usd"
            )

    def reserve(self, amount_usd: float) -> None:
        """Hold `amount_usd` for a call, or raise BudgetExceeded if it could cross the cap."""
        with self._lock:
            if self.cap_usd is not None and (
                self.spent_usd + self._reserved + amount_usd > self.cap_usd
            ):
                raise BudgetExceeded(
                    f"budget_usd {self.cap_usd:g} reached: spent {self.spent_usd:.6f} USD, and "
                    f"the next call could cost up to {amount_usd:.6f} USD"
                )
            self._reserved += amount_usd

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        """Replace a reservation by what the call really cost."""
        with self._lock:
            self._reserved -= reserved_usd
            self.spent_usd += actual_usd
