"""Token prices from MLflow's bundled model catalogue, or from the config; never invented."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from llmops_mlflow.config import LLMConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pricing:
    """USD per token, and where the figure came from; `None` prices mean unknown."""

    input_per_token: float | None
    output_per_token: float | None
    source: str

    @property
    def known(self) -> bool:
        return self.input_per_token is not None and self.output_per_token is not None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for one call, or None when the price is unknown."""
        if not self.known:
            return None
        return prompt_tokens * self.input_per_token + completion_tokens * self.output_per_token


def pricing_for(config: LLMConfig) -> Pricing:
    """Look up the price of the config's model, warning when there is none."""
    if config.price is not None:
        return Pricing(
            config.price.input_per_million / 1e6, config.price.output_per_million / 1e6, "config"
        )
    if config.provider == "local":
        return Pricing(0.0, 0.0, "local model, no per-token charge")
    if config.base_url is None:
        found = _catalogue(config.model, provider=config.provider)
        if found is not None:
            return found
    logger.warning(
        "no price known for model %r at %s; cost is not reported (set llm.price in the sweep "
        "file to state one)",
        config.model,
        config.base_url or config.provider,
    )
    return Pricing(None, None, "unknown")


def _catalogue(model: str, provider: str) -> Pricing | None:
    from mlflow.utils.providers import cost_per_token

    prices = cost_per_token(
        model, prompt_tokens=1_000_000, completion_tokens=1_000_000, custom_llm_provider=provider
    )
    if prices is None:
        return None
    input_cost, output_cost = prices
    return Pricing(input_cost / 1e6, output_cost / 1e6, f"mlflow catalogue ({provider})")
