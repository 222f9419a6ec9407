"""Paired comparisons, the Pareto front and its plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmops_mlflow.compare import (
    COMPARISON_COLUMNS,
    holm,
    paired_comparison,
    pareto_front,
    pareto_plot,
    sign_flip_p_value,
)
from llmops_mlflow.errors import ConfigError, DataError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def table(scores: dict[str, float | None], metric: str = "score") -> pd.DataFrame:
    """A per-sample table like the sweep's: question ids and one metric column."""
    return pd.DataFrame({"question_id": list(scores), metric: list(scores.values())})


def ids(n: int, start: int = 0) -> list[str]:
    return [f"q{i:02d}" for i in range(start, start + n)]


def scored(values, start: int = 0) -> pd.DataFrame:
    """A table of `values` for consecutive question ids from q{start}."""
    return pd.DataFrame({"question_id": ids(len(values), start), "score": list(values)})


def row(frame: pd.DataFrame, config: str) -> pd.Series:
    return frame.set_index("config").loc[config]


@pytest.mark.parametrize(
    ("higher_is_better", "good_shift"),
    [(True, 0.2), (False, -0.2)],
    ids=["higher-is-better", "lower-is-better"],
)
def test_clearly_better_config_is_significant(higher_is_better, good_shift):
    rng = np.random.default_rng(5)
    base = rng.uniform(0.2, 0.7, 40)
    good = base + good_shift + rng.normal(0, 0.02, 40)
    tables = {"base": scored(base), "good": scored(good)}

    frame = paired_comparison(tables, "score", higher_is_better=higher_is_better)

    base_row = row(frame, "base")
    assert list(frame.columns) == list(COMPARISON_COLUMNS)
    assert base_row["best_config"] == "good"
    assert base_row["n_paired"] == 40
    assert base_row["diff"] == pytest.approx(-good_shift, abs=0.01)
    assert base_row["ci_low"] <= base_row["diff"] <= base_row["ci_high"]
    assert base_row["p_value"] == pytest.approx(1 / 10_001)
    assert bool(base_row["significant"]) is True


def test_best_config_row_has_zero_difference_and_no_test():
    tables = {"a": table({"q1": 0.2, "q2": 0.4}), "b": table({"q1": 0.9, "q2": 0.7})}

    best = row(paired_comparison(tables, "score"), "b")

    assert (best["n_paired"], best["diff"], best["mean"], best["note"]) == (
        2,
        0.0,
        0.8,
        "best config",
    )
    assert math.isnan(best["p_value"]) and bool(best["significant"]) is False


def test_only_shared_questions_are_compared():
    first = scored([0.5] * 10)
    second = scored([0.9] * 5 + [0.0] * 5, start=5)
    tables = {"first": first, "second": second}

    other = row(paired_comparison(tables, "score"), "second")

    # "first" is best by its own mean (0.5 > 0.45); on q05-q09 "second" scores 0.9 there.
    assert other["best_config"] == "first"
    assert other["n_paired"] == 5
    assert (other["mean"], other["best_mean"]) == pytest.approx((0.9, 0.5))
    assert other["diff"] == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("a_scores", "b_scores", "expected_pairs"),
    [
        ([None, 0.2, 0.3, 0.4], [0.9, 0.8, 0.7, 0.6], 3),
        ([0.1, 0.2, 0.3, 0.4], [0.9, math.nan, 0.7, 0.6], 3),
        ([None, 0.2, math.nan, 0.4], [0.9, math.nan, 0.7, 0.6], 1),
    ],
    ids=["unscorable-in-other", "unscorable-in-best", "unscorable-on-both-sides"],
)
def test_unscorable_samples_are_dropped_from_pairs(a_scores, b_scores, expected_pairs):
    tables = {"a": scored(a_scores), "b": scored(b_scores)}

    other = row(paired_comparison(tables, "score"), "a")

    assert other["best_config"] == "b"
    assert other["n_paired"] == expected_pairs


def test_no_shared_scored_question_gives_a_note_and_no_p_value():
    tables = {"a": table({"q1": 0.9, "q2": None}), "b": table({"q2": 0.5, "q3": 0.4})}

    other = row(paired_comparison(tables, "score"), "b")

    assert other["n_paired"] == 0
    assert math.isnan(other["p_value"]) and bool(other["significant"]) is False
    assert other["note"] == "no question scored by both 'b' and 'a'"


def test_identical_scores_give_p_one():
    scores = np.linspace(0, 1, 30)
    tables = {"a": scored(scores), "b": scored(scores)}

    other = row(paired_comparison(tables, "score"), "b")

    assert (other["p_value"], other["p_adjusted"], other["diff"]) == (1.0, 1.0, 0.0)
    assert other["note"] == "identical scores on every paired question"


@pytest.mark.parametrize(
    ("tables", "notes"),
    [
        ({}, []),
        ({"only": table({"q1": 0.5, "q2": 0.7})}, ["best config"]),
        (
            {"a": table({"q1": None}), "b": table({"q1": None})},
            ["no config has scored samples"] * 2,
        ),
    ],
    ids=["no-configs", "one-config", "nothing-scored"],
)
def test_fewer_than_two_scored_configs_run_no_test(tables, notes):
    frame = paired_comparison(tables, "score")

    assert list(frame["note"]) == notes
    assert frame["p_value"].isna().all() and not frame["significant"].any()


def test_comparison_is_deterministic_for_a_seed():
    rng = np.random.default_rng(2)
    tables = {name: scored(rng.uniform(size=35)) for name in "abc"}

    first = paired_comparison(tables, "score", seed=4, resamples=500)

    pd.testing.assert_frame_equal(first, paired_comparison(tables, "score", seed=4, resamples=500))


def test_holm_adjusts_in_step_down_order_and_skips_nan():
    adjusted = holm(np.array([0.01, 0.04, 0.03, math.nan]))

    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, math.nan])


def test_significance_uses_the_holm_adjusted_p_value():
    rng = np.random.default_rng(8)
    base = rng.uniform(0.3, 0.6, 40)
    tables = {
        "best": scored(base + 0.3),
        **{f"c{i}": scored(base + rng.normal(0, 0.1, 40)) for i in range(3)},
    }

    frame = paired_comparison(tables, "score").set_index("config").drop(index="best")

    p_values = frame["p_value"].to_numpy()
    np.testing.assert_allclose(frame["p_adjusted"], holm(p_values))
    assert list(frame["significant"]) == list(frame["p_adjusted"] < 0.05)


@pytest.mark.parametrize(
    ("diffs", "expected"),
    [
        ([1.0] * 5, 2 / 32),
        ([1.0, 1.0, 1.0, -1.0], 10 / 16),
        ([0.0, 0.5, 0.0, -0.5], 1.0),
        ([0.0] * 10, 1.0),
    ],
    ids=["five-wins", "three-wins-one-loss", "balanced-with-ties", "all-zero"],
)
def test_exact_sign_flip_p_values(diffs, expected):
    rng = np.random.default_rng(0)

    assert sign_flip_p_value(np.array(diffs), rng, resamples=100) == pytest.approx(expected)


def test_sampled_sign_flip_uses_the_add_one_estimate():
    rng = np.random.default_rng(0)

    assert sign_flip_p_value(np.full(40, 0.1), rng, resamples=999) == pytest.approx(1 / 1000)


def simulated_pair(rng: np.random.Generator, binary: bool) -> dict[str, pd.DataFrame]:
    """Two configs whose scores come from one distribution: shared difficulty plus noise."""
    n = int(rng.integers(30, 41))
    difficulty = rng.normal(0.0, 1.0, n)
    tables = {}
    for name in ("a", "b"):
        chance = 1 / (1 + np.exp(-(difficulty + rng.normal(0.0, 0.7, n))))
        scores = (rng.uniform(size=n) < chance).astype(float) if binary else chance
        tables[name] = scored(scores)
    return tables


@pytest.mark.parametrize("binary", [False, True], ids=["continuous-scores", "binary-scores"])
def test_identical_configs_are_not_significant_more_often_than_alpha(binary):
    rng = np.random.default_rng(20240611)
    trials = 300

    false_positives = sum(
        bool(
            paired_comparison(simulated_pair(rng, binary), "score", seed=trial, resamples=1000)[
                "significant"
            ].any()
        )
        for trial in range(trials)
    )

    # alpha 0.05 plus about two binomial standard errors for 300 trials.
    assert 0.01 <= false_positives / trials <= 0.08


@pytest.mark.parametrize(
    ("tables", "match"),
    [
        ({"a": pd.DataFrame({"question_id": ["q1"]})}, "config 'a' has no column 'score'"),
        ({"a": pd.DataFrame({"score": [0.5]})}, "config 'a' has no column 'question_id'"),
        ({"a": table({"q1": "high"})}, "config 'a' has non-numeric 'score' scores"),
        (
            {"a": pd.DataFrame({"question_id": ["q1", "q1"], "score": [0.1, 0.2]})},
            r"config 'a' repeats question ids \['q1'\]",
        ),
    ],
    ids=["missing-metric", "missing-question-id", "non-numeric", "duplicate-ids"],
)
def test_malformed_tables_are_rejected(tables, match):
    with pytest.raises(DataError, match=match):
        paired_comparison(tables, "score")


def test_bad_alpha_is_rejected():
    with pytest.raises(ConfigError, match="alpha must be between 0 and 1, got 5"):
        paired_comparison({}, "score", alpha=5)


SUMMARY = pd.DataFrame(
    {
        "config": ["cheap", "balanced", "premium", "wasteful"],
        "answer_similarity": [0.60, 0.75, 0.90, 0.70],
        "cost_usd_per_request": [0.001, 0.004, 0.020, 0.030],
        "latency_p50_ms": [300.0, 500.0, 900.0, 400.0],
    }
)


@pytest.mark.parametrize(
    ("objectives", "front"),
    [
        (
            {"answer_similarity": "max", "cost_usd_per_request": "min"},
            ["cheap", "balanced", "premium"],
        ),
        (
            {"answer_similarity": "max", "latency_p50_ms": "min"},
            ["cheap", "balanced", "premium", "wasteful"],
        ),
        ({"answer_similarity": "max"}, ["premium"]),
        ({"cost_usd_per_request": "max"}, ["wasteful"]),
    ],
    ids=["quality-vs-cost", "quality-vs-latency", "quality-only", "max-direction"],
)
def test_pareto_front_is_exactly_the_non_dominated_set(objectives, front):
    marked = pareto_front(SUMMARY, objectives)

    assert list(marked.loc[marked["pareto"], "config"]) == front
    assert marked["pareto_note"].isna().all()


def test_pareto_front_keeps_ties_and_does_not_touch_its_input():
    summary = pd.DataFrame({"config": ["a", "b", "c"], "q": [0.8, 0.8, 0.5]})

    marked = pareto_front(summary, {"q": "max"})

    assert list(marked["pareto"]) == [True, True, False]
    assert list(summary.columns) == ["config", "q"]


def test_objective_missing_everywhere_is_left_out():
    summary = SUMMARY.assign(cost_usd_per_request=[None] * 4)

    marked = pareto_front(summary, {"answer_similarity": "max", "cost_usd_per_request": "min"})

    assert list(marked.loc[marked["pareto"], "config"]) == ["premium"]
    assert marked["pareto_note"].isna().all()


def test_config_missing_an_objective_is_off_the_front_with_a_note():
    summary = SUMMARY.assign(cost_usd_per_request=[0.001, None, 0.020, 0.030])

    marked = pareto_front(summary, {"answer_similarity": "max", "cost_usd_per_request": "min"})

    assert list(marked.loc[marked["pareto"], "config"]) == ["cheap", "premium"]
    assert list(marked["pareto_note"].fillna("")) == [
        "",
        "missing cost_usd_per_request; not compared",
        "",
        "",
    ]


@pytest.mark.parametrize(
    ("objectives", "match"),
    [
        ({}, "objectives must name at least one column"),
        ({"quality": "max"}, "objective 'quality' is not a column"),
        ({"answer_similarity": "up"}, "must be 'max' or 'min', got 'up'"),
    ],
    ids=["no-objectives", "unknown-column", "bad-direction"],
)
def test_bad_objectives_are_rejected(objectives, match):
    with pytest.raises(ConfigError, match=match):
        pareto_front(SUMMARY, objectives)


def test_pareto_plot_writes_a_png(tmp_path: Path):
    marked = pareto_front(SUMMARY, {"answer_similarity": "max", "cost_usd_per_request": "min"})

    path = pareto_plot(marked, "cost_usd_per_request", "answer_similarity", tmp_path / "p.png")

    assert path == tmp_path / "p.png"
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_pareto_plot_needs_the_pareto_column(tmp_path: Path):
    with pytest.raises(ConfigError, match="run pareto_front first"):
        pareto_plot(SUMMARY, "cost_usd_per_request", "answer_similarity", tmp_path / "p.png")
