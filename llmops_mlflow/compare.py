"""Compare the configs of a sweep: paired significance tests and the Pareto front."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from llmops_mlflow.errors import ConfigError, DataError
from llmops_mlflow.stats import bootstrap_mean

logger = logging.getLogger(__name__)

PERMUTATIONS = 10_000
# Up to 2**14 sign patterns are enumerated exactly; beyond that they are sampled.
EXACT_MAX_NONZERO = 14
# Sign-flip statistics are built in blocks of about this many cells to bound memory.
BLOCK_CELLS = 2_000_000
QUESTION_ID = "question_id"
COMPARISON_COLUMNS = (
    "config",
    "best_config",
    "n_scored",
    "mean_scored",
    "n_paired",
    "mean",
    "best_mean",
    "diff",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "significant",
    "note",
)

Direction = Literal["max", "min"]
DIRECTIONS: tuple[Direction, ...] = ("max", "min")


@dataclass(frozen=True)
class PairedTest:
    """One config against the best on their shared scored questions."""

    n: int
    mean: float
    best_mean: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    identical: bool


def paired_comparison(
    tables: Mapping[str, pd.DataFrame],
    metric: str,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    seed: int = 0,
    resamples: int = PERMUTATIONS,
) -> pd.DataFrame:
    """Compare every config with the best one on the questions both of them scored.

    The best config has the best mean of `metric` over its own scored samples (the first
    one wins a tie). Each other config is joined with it on `question_id`; a question that
    either side could not score is dropped, so both means cover the same questions.

    The test is a two-sided sign-flip permutation test on the per-question differences
    (config minus best): under "no difference" each difference is as likely to have either
    sign, so flipping signs gives the null distribution of the mean difference without
    assuming normality, and it keeps its nominal rate with 30-40 questions and 0/1 scores,
    where a bootstrap test runs hot. Up to 14 non-zero differences are enumerated exactly;
    more are sampled `resamples` times with a seeded generator and the add-one estimate
    `(1 + hits) / (1 + resamples)`. Identical scores on every pair give p = 1. The 95%
    interval of the mean difference is a seeded percentile bootstrap over questions; it
    can disagree with the p-value at the margin, and `significant` follows the p-value.

    P-values are Holm-adjusted across the comparisons (`p_adjusted`) and `significant` is
    `p_adjusted < alpha`. The best config's own row has diff 0 and no test. Choosing the
    best from the same data favours it slightly when three or more configs are alike.

    Example:
        >>> tables = {c.name: c.table for c in sweep_result.configs}
        >>> paired_comparison(tables, "answer_similarity")[["config", "diff", "p_adjusted"]]

    Returns:
        One row per config, in the order of `tables`, with the columns of
        `COMPARISON_COLUMNS`; `note` says why a row has no test.
    """
    _check_test_options(alpha, resamples)
    scores = {name: _scores(table, metric, name) for name, table in tables.items()}
    best = _pick_best(scores, higher_is_better)
    rows = [_comparison_row(name, scores, best, seed, resamples) for name in scores]

    frame = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    frame["p_adjusted"] = holm(frame["p_value"].to_numpy(dtype=float))
    frame["significant"] = (frame["p_adjusted"] < alpha).astype(bool)
    return frame


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries stay NaN and are not counted."""
    adjusted = np.full(p_values.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p_values))
    order = finite[np.argsort(p_values[finite], kind="stable")]
    factors = np.arange(order.size, 0, -1)
    stepped = np.maximum.accumulate(factors * p_values[order])
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def _check_test_options(alpha: float, resamples: int) -> None:
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1, got {alpha!r}")
    if resamples < 1:
        raise ConfigError(f"resamples must be at least 1, got {resamples!r}")


def _scores(table: pd.DataFrame, metric: str, name: str) -> pd.Series:
    """The scored values of `metric`, indexed by question id."""
    for column in (QUESTION_ID, metric):
        if column not in table.columns:
            raise DataError(
                f"config {name!r} has no column {column!r}; columns are {list(table.columns)}"
            )
    duplicated = table[QUESTION_ID][table[QUESTION_ID].duplicated()]
    if not duplicated.empty:
        raise DataError(f"config {name!r} repeats question ids {sorted(set(duplicated))!r}")
    try:
        values = pd.to_numeric(table[metric], errors="raise").astype(float)
    except (TypeError, ValueError) as err:
        raise DataError(f"config {name!r} has non-numeric {metric!r} scores: {err}") from err
    return pd.Series(values.to_numpy(), index=table[QUESTION_ID].to_numpy()).dropna()


def _pick_best(scores: Mapping[str, pd.Series], higher_is_better: bool) -> str | None:
    means = {name: s.mean() for name, s in scores.items() if not s.empty}
    if not means:
        return None
    pick = max if higher_is_better else min
    return pick(means, key=means.__getitem__)


def _comparison_row(
    name: str, scores: Mapping[str, pd.Series], best: str | None, seed: int, resamples: int
) -> dict[str, object]:
    own = scores[name]
    row: dict[str, object] = {
        "config": name,
        "best_config": best,
        "n_scored": int(own.size),
        "mean_scored": float(own.mean()),
        "n_paired": 0,
        "p_value": np.nan,
    }
    if best is None:
        return row | {"note": "no config has scored samples"}
    if own.empty:
        return row | {"note": f"{name!r} has no scored samples"}
    if name == best:
        return row | _best_fields(own)
    test = _paired_test(own, scores[best], seed, resamples)
    if test is None:
        return row | {"note": f"no question scored by both {name!r} and {best!r}"}
    return row | _test_fields(test)


def _best_fields(own: pd.Series) -> dict[str, object]:
    mean = float(own.mean())
    return {
        "n_paired": int(own.size),
        "mean": mean,
        "best_mean": mean,
        "diff": 0.0,
        "ci_low": 0.0,
        "ci_high": 0.0,
        "note": "best config",
    }


def _test_fields(test: PairedTest) -> dict[str, object]:
    return {
        "n_paired": test.n,
        "mean": test.mean,
        "best_mean": test.best_mean,
        "diff": test.diff,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "p_value": test.p_value,
        "note": "identical scores on every paired question" if test.identical else None,
    }


def _paired_test(own: pd.Series, best: pd.Series, seed: int, resamples: int) -> PairedTest | None:
    shared = own.index.intersection(best.index, sort=False)
    if shared.empty:
        return None
    mine, theirs = own.loc[shared].to_numpy(), best.loc[shared].to_numpy()
    diffs = mine - theirs
    interval = bootstrap_mean(diffs, seed=seed)
    return PairedTest(
        n=int(diffs.size),
        mean=float(mine.mean()),
        best_mean=float(theirs.mean()),
        diff=float(diffs.mean()),
        ci_low=interval.ci_low if interval else np.nan,
        ci_high=interval.ci_high if interval else np.nan,
        p_value=sign_flip_p_value(diffs, np.random.default_rng(seed), resamples),
        identical=not diffs.any(),
    )


def sign_flip_p_value(diffs: np.ndarray, rng: np.random.Generator, resamples: int) -> float:
    """Two-sided p-value of a zero mean difference, by flipping the signs of the differences."""
    nonzero = diffs[diffs != 0]
    if nonzero.size <= EXACT_MAX_NONZERO:
        return _exact_sign_flip(nonzero)
    return _sampled_sign_flip(nonzero, rng, resamples)


def _at_least(flipped: np.ndarray, observed: float) -> np.ndarray:
    # Ties in 0/1 data are common; rounding must not turn a tie into a miss.
    return flipped >= observed - 1e-9 * max(1.0, observed)


def _exact_sign_flip(nonzero: np.ndarray) -> float:
    patterns = np.arange(2**nonzero.size)[:, None] >> np.arange(nonzero.size) & 1
    flipped = np.abs((1 - 2 * patterns) @ nonzero)
    return float(_at_least(flipped, abs(nonzero.sum())).mean())


def _sampled_sign_flip(nonzero: np.ndarray, rng: np.random.Generator, resamples: int) -> float:
    observed = abs(nonzero.sum())
    block = max(1, BLOCK_CELLS // nonzero.size)
    hits = 0
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, nonzero.size))
        hits += int(_at_least(np.abs(signs @ nonzero), observed).sum())
    return (1 + hits) / (1 + resamples)


def pareto_front(summary: pd.DataFrame, objectives: Mapping[str, Direction]) -> pd.DataFrame:
    """Mark the configs that no other config dominates on `objectives`.

    A config is dominated when another one is at least as good on every objective and
    strictly better on one; configs with equal values are all kept. An objective missing
    for every config (say, cost with no known prices) is left out with a warning. A config
    missing a value that others have is not on the front and gets a `pareto_note`.

    Example:
        >>> pareto_front(summary_frame(result), {"answer_similarity": "max",
        ...                                      "cost_usd_per_request": "min"})

    Returns:
        A copy of `summary` with a boolean `pareto` column and a `pareto_note` column.
    """
    values = _objective_values(summary, objectives)
    usable = [c for c in values.columns if values[c].notna().any()]
    skipped = [c for c in values.columns if c not in usable]
    if skipped:
        logger.warning("objectives %s are missing for every config; left out", skipped)

    complete = values[usable].notna().all(axis=1).to_numpy()
    pareto = np.zeros(len(summary), dtype=bool)
    pareto[complete] = non_dominated(values.loc[complete, usable].to_numpy(dtype=float))

    frame = summary.copy()
    frame["pareto"] = pareto
    frame["pareto_note"] = [_missing_note(values.iloc[i], usable) for i in range(len(frame))]
    return frame


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Which rows of an (n, d) array of to-be-maximised values no other row dominates."""
    at_least = (points[:, None, :] >= points[None, :, :]).all(axis=2)
    better = (points[:, None, :] > points[None, :, :]).any(axis=2)
    return ~(at_least & better).any(axis=0)


def _objective_values(summary: pd.DataFrame, objectives: Mapping[str, Direction]) -> pd.DataFrame:
    """The objective columns as floats, negated where smaller is better."""
    if not objectives:
        raise ConfigError("objectives must name at least one column, got none")
    columns = {}
    for column, direction in objectives.items():
        if column not in summary.columns:
            raise ConfigError(
                f"objective {column!r} is not a column; columns are {list(summary.columns)}"
            )
        if direction not in DIRECTIONS:
            raise ConfigError(f"objective {column!r} must be 'max' or 'min', got {direction!r}")
        columns[column] = _numeric(summary[column], column)
        if direction == "min":
            columns[column] = -columns[column]
    return pd.DataFrame(columns).reset_index(drop=True)


def _numeric(column: pd.Series, name: str) -> pd.Series:
    try:
        return pd.to_numeric(column, errors="raise").astype(float)
    except (TypeError, ValueError) as err:
        raise DataError(f"objective {name!r} has non-numeric values: {err}") from err


def _missing_note(row: pd.Series, usable: list[str]) -> str | None:
    missing = [c for c in usable if pd.isna(row[c])]
    return f"missing {', '.join(missing)}; not compared" if missing else None


def pareto_plot(summary: pd.DataFrame, x: str, y: str, path: Path) -> Path:
    """Scatter the configs on `x` and `y`, highlight and label the front, save a PNG.

    `summary` needs `config` and the `pareto` column from `pareto_front`. The front is the
    one over all of that call's objectives, so with more than two of them a front point
    can look dominated in this plane. Configs missing `x` or `y` are left out.

    Example:
        >>> pareto_plot(front, "cost_usd_per_request", "answer_similarity", Path("p.png"))
    """
    # Imported here so that the statistics work without loading matplotlib.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = _plot_points(summary, x, y)
    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    front, rest = points[points["pareto"]], points[~points["pareto"]]
    axes.scatter(rest[x], rest[y], color="0.6", label="dominated")
    axes.scatter(front[x], front[y], color="tab:red", label="Pareto front", zorder=3)
    for _, row in front.iterrows():
        axes.annotate(
            str(row["config"]), (row[x], row[y]), xytext=(4, 4), textcoords="offset points"
        )
    axes.set(xlabel=x, ylabel=y, title=f"{y} against {x}")
    axes.grid(alpha=0.3)
    axes.legend()

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=120)
    return path


def _plot_points(summary: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The plottable rows: config, finite x and y, and the pareto flag as a bool."""
    needed = ["config", x, y, "pareto"]
    missing = [c for c in needed if c not in summary.columns]
    if missing:
        raise ConfigError(
            f"pareto_plot needs columns {missing}; run pareto_front first to add 'pareto'"
        )
    points = pd.DataFrame(
        {
            "config": summary["config"].to_numpy(),
            x: _numeric(summary[x], x).to_numpy(),
            y: _numeric(summary[y], y).to_numpy(),
            "pareto": summary["pareto"].eq(True).to_numpy(),
        }
    )
    plottable = np.isfinite(points[[x, y]]).all(axis=1)
    if not plottable.all():
        left_out = list(points.loc[~plottable, "config"])
        logger.warning("configs %s have no %s or %s; left out of the plot", left_out, x, y)
    return points[plottable]
