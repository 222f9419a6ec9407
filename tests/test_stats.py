"""Percentiles and bootstrap intervals."""

from __future__ import annotations

import pytest

from llmops_mlflow.stats import bootstrap_mean, percentile


def test_percentiles():
    assert percentile([1, 2, 3, 4, 5], 50) == 3.0
    assert percentile([1, 2, 3, 4, 5], 95) == pytest.approx(4.8)
    assert percentile([], 50) is None


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = [0.0, 1.0] * 20
    first = bootstrap_mean(values, seed=3)
    assert first == bootstrap_mean(values, seed=3)
    assert first.mean == 0.5 and first.n == 40
    assert 0.3 < first.ci_low < 0.5 < first.ci_high < 0.7


def test_bootstrap_edge_cases():
    assert bootstrap_mean([]) is None
    single = bootstrap_mean([0.7])
    assert (single.mean, single.ci_low, single.ci_high, single.n) == (0.7, 0.7, 0.7, 1)


def test_interval_covers_the_true_mean_at_about_the_nominal_rate():
    import numpy as np

    rng = np.random.default_rng(11)
    hits = 0
    for trial in range(200):
        sample = rng.binomial(1, 0.3, size=40).astype(float)
        estimate = bootstrap_mean(sample, seed=trial, resamples=500)
        hits += estimate.ci_low <= 0.3 <= estimate.ci_high
    assert 0.88 <= hits / 200 <= 0.99
