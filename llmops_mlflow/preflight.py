"""Checks a sweep must pass before it writes anything: each would otherwise fail only after
the sweep had opened its MLflow runs, leaving a FAILED run behind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from llmops_mlflow.cache import ResultCache
from llmops_mlflow.config import JUDGE_METRICS, RETRIEVAL_SCORERS, Sweep
from llmops_mlflow.datasets import EvalDataset, check_gold_ids
from llmops_mlflow.documents import Corpus
from llmops_mlflow.embeddings import get_embeddings
from llmops_mlflow.errors import ConfigError
from llmops_mlflow.llms import get_chat_model
from llmops_mlflow.secrets import api_key


def check_sweep(sweep: Sweep, dataset: EvalDataset, corpus: Corpus) -> None:
    """Refuse an unknown provider or model, a missing API key (chain or judge), gold ids the
    corpus does not hold, and a primary metric the sweep would not compute."""
    _check_models(sweep)
    judge = sweep.spec.judge
    if judge is not None:
        try:
            api_key(judge.api_key_env, judge.base_url)
        except ConfigError as err:
            raise ConfigError(f"{sweep.path}: judge: {err}") from err
    check_gold_ids(dataset, [doc.doc_id for doc in corpus.documents], corpus.source)
    _check_primary_metric(sweep, dataset)


def _check_models(sweep: Sweep) -> None:
    checked: set[str] = set()
    for resolved in sweep.configs:
        config = resolved.config
        sections = config.llm.model_dump_json() + config.embedding.model_dump_json()
        if sections in checked:
            continue
        checked.add(sections)
        try:
            get_chat_model(config.llm)
            get_embeddings(config.embedding)
        except ConfigError as err:
            raise ConfigError(f"{sweep.path}: config {resolved.name!r}: {err}") from err


def _check_primary_metric(sweep: Sweep, dataset: EvalDataset) -> None:
    """The metric configs are compared on must be one the sweep computes."""
    spec = sweep.spec
    metric = spec.options.primary_metric
    if metric is None:
        return
    if metric in JUDGE_METRICS:
        judged = spec.judge is not None and metric in spec.judge.metrics
        why = None if judged else "no judge section lists it in judge.metrics"
    elif metric == "groundedness":
        why = None if spec.detector.enabled else "detector.enabled is false"
    elif spec.options.scorers is not None and metric not in spec.options.scorers:
        why = "options.scorers leaves it out"
    elif metric in RETRIEVAL_SCORERS:
        why = None if dataset.has_gold_ids else f"no question in {dataset.path} has gold_doc_ids"
    else:
        has = dataset.has_references
        why = None if has else f"no question in {dataset.path} has a reference_answer"
    if why:
        raise ConfigError(
            f"{sweep.path}: options.primary_metric {metric!r} would not be computed: {why}; "
            "choose another primary metric or supply what it needs"
        )


def check_cache(folder: Path) -> None:
    """A cache that cannot be opened would stop the sweep with a sqlite traceback."""
    try:
        ResultCache(folder).close()
    except (sqlite3.Error, OSError) as err:
        raise ConfigError(
            f"the result cache in {folder} cannot be opened ({err}); move the folder away, "
            "choose another --cache-dir, or run with --no-cache"
        ) from err
