"""Prices: MLflow's bundled catalogue, a stated price, or none at all (never a fake 0)."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from llmops_mlflow.config import LLMConfig, Price
from llmops_mlflow.cost import pricing_for


def _catalogue_price(model: str) -> tuple[float, float]:
    path = resources.files("mlflow.utils").joinpath("model_catalog", "openai.json")
    entry = json.loads(path.read_text(encoding="utf-8"))["models"][model]["pricing"]
    return entry["input_per_million_tokens"] / 1e6, entry["output_per_million_tokens"] / 1e6


def test_openai_models_are_priced_from_the_bundled_catalogue():
    pricing = pricing_for(LLMConfig(provider="openai", model="gpt-4o-mini"))
    per_in, per_out = _catalogue_price("gpt-4o-mini")
    assert pricing.source == "mlflow catalogue (openai)"
    assert pricing.cost(1000, 200) == pytest.approx(1000 * per_in + 200 * per_out)
    assert pricing.cost(1000, 200) > 0


def test_unknown_model_has_no_cost_and_warns(caplog):
    pricing = pricing_for(LLMConfig(provider="openai", model="house-model-7b"))
    assert pricing.cost(1000, 200) is None
    assert "no price known for model 'house-model-7b'" in caplog.text


def test_self_hosted_endpoint_is_not_priced_by_model_name(caplog):
    config = LLMConfig(provider="openai", model="gpt-4o-mini", base_url="http://127.0.0.1:9")
    assert pricing_for(config).cost(10, 10) is None


def test_stated_price_wins():
    config = LLMConfig(
        provider="openai",
        model="x",
        base_url="http://h",
        price=Price(input_per_million=2.0, output_per_million=4.0),
    )
    assert pricing_for(config).cost(1_000_000, 500_000) == pytest.approx(4.0)


def test_local_model_costs_nothing_and_says_why():
    pricing = pricing_for(LLMConfig())
    assert pricing.cost(500, 50) == 0.0
    assert pricing.source == "local model, no per-token charge"
