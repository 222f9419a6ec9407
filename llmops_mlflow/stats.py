"""Summary statistics: percentiles and seeded bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean over `n` scored samples with its bootstrap interval."""

    mean: float
    ci_low: float
    ci_high: float
    n: int


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), or None for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else None


def bootstrap_mean(
    values: Sequence[float], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> Estimate | None:
    """Mean with a percentile-bootstrap 95% interval; None when there is nothing to average."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    mean = float(data.mean())
    if data.size == 1:
        return Estimate(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(mean, float(low), float(high), int(data.size))
