"""Promote a sweep's winner: pick it, log it as a pyfunc model, register it, alias @champion."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import mlflow
import yaml
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array
from pydantic import BaseModel, ValidationError

from llmops_mlflow import tracking
from llmops_mlflow.config import ChampionConfig, DetectorConfig, RagConfig, RunOptions
from llmops_mlflow.errors import ConfigError, DataError
from llmops_mlflow.guardrails import GuardrailsConfig, parse_guardrails

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "llmops-rag"
DEFAULT_PRIMARY_METRIC = "answer_similarity"
CHAMPION, PREVIOUS = "champion", "previous"
MODEL_CODE = Path(__file__).with_name("model_code.py")
KEY_METRICS = (
    "answer_similarity",
    "answer_f1",
    "recall_at_k",
    "hallucination_rate",
    "cost_usd_per_request",
    "latency_p50_ms",
    "latency_p95_ms",
)
COPY_BATCH = 512
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class Candidate:
    """One finished child run of a sweep, as the selection sees it."""

    run_id: str
    name: str
    config_hash: str
    metrics: Mapping[str, float]

    def interval(self, metric: str) -> tuple[float, float]:
        """The metric's confidence interval, or the point value when no CI was logged."""
        value = self.metrics[metric]
        low = self.metrics.get(f"{metric}_ci_low", value)
        high = self.metrics.get(f"{metric}_ci_high", value)
        return low, high


@dataclass(frozen=True)
class Selection:
    """The winner, the configs statistically tied with the best, and why others were out."""

    winner: Candidate
    best: Candidate
    tied: tuple[str, ...]
    rejected: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSettings:
    """What a sweep file says about its champion, read back from the parent run's sweep.yaml."""

    champion: ChampionConfig
    guardrails: GuardrailsConfig
    detector: DetectorConfig
    options: RunOptions


@dataclass(frozen=True)
class ChampionInfo:
    """What `register_champion` registered."""

    model_name: str
    version: str
    model_uri: str
    source_run_id: str
    parent_run_id: str
    config_name: str
    config_hash: str
    primary_metric: str
    metrics: Mapping[str, float]
    previous_version: str | None

    @property
    def champion_uri(self) -> str:
        return f"models:/{self.model_name}@{CHAMPION}"


def register_champion(
    parent_run_id: str | None = None,
    model_name: str | None = None,
    constraints: Mapping[str, float] | None = None,
    primary_metric: str | None = None,
    guardrails: GuardrailsConfig | Mapping[str, Any] | None = None,
) -> ChampionInfo:
    """Pick a sweep's best config, log it as a self-contained pyfunc and alias it @champion.

    The winner maximises the primary metric among configs under every ceiling in the
    constraints; among configs whose confidence interval overlaps the best one's, the
    cheaper (then faster) one wins. The previous champion, if any, becomes @previous.
    Name, primary metric, constraints, guardrails and detector come from the sweep file's
    `champion`, `guardrails` and `detector` sections; arguments given here override them
    (a constraint given here replaces the sweep's ceiling for that metric only).

    Example:
        >>> info = register_champion(constraints={"cost_usd_per_request": 0.01})
        >>> info.champion_uri
        'models:/llmops-rag@champion'
    """
    given_name = _checked_name(model_name) if model_name else None
    tracking.configure()
    parent = _parent_run(parent_run_id)
    settings = sweep_settings(parent)
    name = given_name or settings.champion.model_name
    metric = _primary_metric(primary_metric, settings, parent)
    ceilings = _checked_ceilings({**settings.champion.constraints, **(constraints or {})})
    guard = settings.guardrails if guardrails is None else parse_guardrails(guardrails)

    selection = select_champion(_candidates(parent), metric, ceilings)
    winner = selection.winner
    logger.info(
        "champion of sweep %s: %s (%s=%.4g; tied with the best: %s)",
        parent.info.run_id,
        winner.name,
        metric,
        winner.metrics[metric],
        ", ".join(selection.tied),
    )

    with tempfile.TemporaryDirectory(prefix="llmops-champion-") as folder:
        artifacts = _model_artifacts(parent, winner, Path(folder), guard, settings)
        model_uri = _log_model(parent, winner, artifacts)
    return _register(model_uri, name, parent, winner, metric)


def _checked_name(name: str) -> str:
    """The rule the sweep file's champion.model_name follows, checked before anything is logged."""
    try:
        return ChampionConfig(model_name=name).model_name
    except ValidationError as err:
        raise ConfigError(
            f"model name {name!r} is not allowed; use letters, digits, '_', '.' and '-' only"
        ) from err


def _checked_ceilings(ceilings: dict[str, float]) -> dict[str, float]:
    """A NaN ceiling would let every config pass, since no comparison with NaN is true."""
    bad = {k: v for k, v in ceilings.items() if not isinstance(v, int | float) or math.isnan(v)}
    if bad:
        raise ConfigError(f"constraints {bad} are not numbers; give each metric a ceiling")
    return ceilings


def sweep_settings(parent: Run) -> SweepSettings:
    """The champion, guardrails, detector and options sections of the sweep; defaults if absent.

    Each section is read on its own, so a sweep logged by an older version still registers.
    """
    spec = _sweep_spec(parent)
    source = f"sweep.yaml of run {parent.info.run_id}"
    return SweepSettings(
        champion=_section(ChampionConfig, spec, "champion", source),
        guardrails=parse_guardrails(spec.get("guardrails") or {}, f"{source}: guardrails"),
        detector=_section(DetectorConfig, spec, "detector", source),
        options=_section(RunOptions, spec, "options", source),
    )


def _sweep_spec(parent: Run) -> dict[str, Any]:
    uri = f"runs:/{parent.info.run_id}/sweep.yaml"
    try:
        path = Path(mlflow.artifacts.download_artifacts(uri))
    except MlflowException:
        logger.warning("run %s logged no sweep.yaml; using default settings", parent.info.run_id)
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _section(model: type[_M], spec: Mapping[str, Any], key: str, source: str) -> _M:
    try:
        return model.model_validate(spec.get(key) or {})
    except ValidationError as err:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(
            f"{source}: invalid {key} section: {details}; fix the sweep file and rerun the sweep"
        ) from err


def _primary_metric(given: str | None, settings: SweepSettings, parent: Run) -> str:
    return (
        given
        or settings.champion.primary_metric
        or settings.options.primary_metric
        or parent.data.tags.get("llmops.primary_metric")
        or DEFAULT_PRIMARY_METRIC
    )


def select_champion(
    candidates: Sequence[Candidate], primary_metric: str, constraints: Mapping[str, float]
) -> Selection:
    """The best config under the ceilings, preferring the cheaper one within the CI of the best."""
    rejected = {
        c.name: why for c in candidates if (why := _failure(c, primary_metric, constraints))
    }
    passing = [c for c in candidates if c.name not in rejected]
    for name, why in rejected.items():
        logger.info("config %s is not eligible: %s", name, why)
    if not any(primary_metric in c.metrics for c in candidates):
        logged = sorted({m for c in candidates for m in c.metrics if not m.endswith(_NOT_RANKED)})
        raise ConfigError(
            f"no config logged the primary metric {primary_metric!r}; choose one of the metrics "
            f"the sweep logged: {', '.join(logged)}"
        )
    if not passing:
        listing = "\n".join(f"  {name}: {why}" for name, why in rejected.items())
        raise ConfigError(
            f"no config passes the constraints {dict(constraints)} on {primary_metric}:\n"
            f"{listing}\nrelax a ceiling or run a sweep with cheaper or better configs"
        )
    best = max(passing, key=lambda c: c.metrics[primary_metric])
    low, _ = best.interval(primary_metric)
    tied = [c for c in passing if c.interval(primary_metric)[1] >= low]
    winner = min(tied, key=lambda c: _thrift(c, primary_metric))
    return Selection(winner, best, tuple(c.name for c in tied), rejected)


_NOT_RANKED = ("_ci_low", "_ci_high")


def _failure(candidate: Candidate, metric: str, constraints: Mapping[str, float]) -> str | None:
    value = candidate.metrics.get(metric)
    if value is None or math.isnan(value):
        return f"primary metric {metric} was not logged"
    reasons = []
    for name, ceiling in constraints.items():
        got = candidate.metrics.get(name)
        if got is None:
            reasons.append(f"{name} was not logged, so the ceiling {ceiling} cannot be checked")
        elif got > ceiling:
            reasons.append(f"{name}={got:.4g} exceeds the ceiling {ceiling}")
    return "; ".join(reasons) or None


def _thrift(candidate: Candidate, metric: str) -> tuple[float, float, float]:
    metrics = candidate.metrics
    return (
        metrics.get("cost_usd_per_request", math.inf),
        metrics.get("latency_p50_ms", math.inf),
        -metrics[metric],
    )


def _parent_run(parent_run_id: str | None) -> Run:
    client = mlflow.MlflowClient()
    if parent_run_id is not None:
        try:
            run = client.get_run(parent_run_id)
        except MlflowException as err:
            raise ConfigError(
                f"no run {parent_run_id!r} in {mlflow.get_tracking_uri()}; pass the parent run "
                "id that `llmops sweep` printed, or omit it to use the latest sweep"
            ) from err
        return _checked_parent(run)
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string="tags.`llmops.sweep` != '' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=500,
        output_format="list",
    )
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    if not parents:
        raise ConfigError(
            f"no finished sweep in {mlflow.get_tracking_uri()}; run `llmops sweep FILE` first "
            "or pass the parent run id"
        )
    return parents[0]


def _checked_parent(run: Run) -> Run:
    tags = run.data.tags
    if "mlflow.parentRunId" in tags and "llmops.sweep" in tags:
        raise ConfigError(
            f"run {run.info.run_id} is one config of a sweep; pass its parent run "
            f"{tags['mlflow.parentRunId']} instead"
        )
    if "llmops.sweep" not in tags:
        raise ConfigError(
            f"run {run.info.run_id} ({run.info.run_name}) is not a sweep; pass the parent run "
            "id that `llmops sweep` printed"
        )
    return run


def _candidates(parent: Run) -> list[Candidate]:
    children = mlflow.MlflowClient().search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        max_results=1000,
    )
    finished = [r for r in children if r.info.status == "FINISHED"]
    if not finished:
        states = sorted({r.info.status for r in children}) or ["none"]
        raise DataError(
            f"sweep run {parent.info.run_id} has no finished config run "
            f"(child runs: {len(children)}, states: {', '.join(states)})"
        )
    return [
        Candidate(
            run_id=r.info.run_id,
            name=r.info.run_name or r.info.run_id,
            config_hash=r.data.tags.get("llmops.config_hash", ""),
            metrics=dict(r.data.metrics),
        )
        for r in finished
    ]


def _model_artifacts(
    parent: Run,
    winner: Candidate,
    folder: Path,
    guard: GuardrailsConfig,
    settings: SweepSettings,
) -> dict[str, str]:
    """Config, prompt, guardrails, detector and an index snapshot: all the model needs to run."""
    config_path = Path(mlflow.artifacts.download_artifacts(f"runs:/{winner.run_id}/config.yaml"))
    config = RagConfig.model_validate(yaml.safe_load(config_path.read_text(encoding="utf-8")))
    artifacts = {"config": str(config_path), "prompt": _prompt(winner, folder)}
    index_dir = Path(settings.options.index_dir)
    artifacts["index"] = str(_snapshot_index(parent, winner, config, index_dir, folder / "index"))
    for name, section in (("guardrails", guard), ("detector", settings.detector)):
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(section.model_dump(mode="json")), encoding="utf-8")
        artifacts[name] = str(path)
    return artifacts


def _prompt(winner: Candidate, folder: Path) -> str:
    files = mlflow.MlflowClient().list_artifacts(winner.run_id, "prompt")
    names = [f.path for f in files if not f.path.endswith("rendered_example.txt")]
    if len(names) != 1:
        raise DataError(
            f"run {winner.run_id} should hold one prompt template under prompt/, found {names}"
        )
    return mlflow.artifacts.download_artifacts(
        f"runs:/{winner.run_id}/{names[0]}", dst_path=str(folder / "prompt")
    )


def _snapshot_index(
    parent: Run, winner: Candidate, config: RagConfig, source: Path, target: Path
) -> Path:
    """Copy the winner's Chroma collection into a fresh folder, or rebuild it from the corpus."""
    import chromadb
    from chromadb.config import Settings

    name = mlflow.get_run(winner.run_id).data.tags.get("llmops.index", "")
    settings = Settings(anonymized_telemetry=False)
    if source.is_dir() and name:
        client = chromadb.PersistentClient(path=str(source), settings=settings)
        try:
            collection = client.get_collection(name)
        except Exception:  # chromadb raises NotFoundError or ValueError by version
            collection = None
        if collection is not None:
            _copy_collection(collection, chromadb.PersistentClient(str(target), settings))
            return target
    logger.warning("index %s not found under %s; rebuilding it from the corpus", name, source)
    return _rebuild_index(parent, config, target)


def _copy_collection(collection: Any, client: Any) -> None:
    copy = client.create_collection(
        collection.name, embedding_function=None, metadata=collection.metadata
    )
    total = collection.count()
    for offset in range(0, total, COPY_BATCH):
        batch = collection.get(
            include=["documents", "embeddings", "metadatas"], limit=COPY_BATCH, offset=offset
        )
        copy.add(
            ids=batch["ids"],
            documents=batch["documents"],
            embeddings=batch["embeddings"],
            metadatas=batch["metadatas"],
        )
    logger.info("index %s snapshot: %d chunks", collection.name, total)


def _rebuild_index(parent: Run, config: RagConfig, target: Path) -> Path:
    from llmops_mlflow.documents import load_corpus
    from llmops_mlflow.index import IndexStore

    corpus_path = parent.data.tags.get("llmops.corpus", "")
    if not corpus_path or not Path(corpus_path).exists():
        raise DataError(
            f"cannot snapshot the index of sweep {parent.info.run_id}: its index folder is gone "
            f"and its corpus {corpus_path!r} is not readable from {Path.cwd()}"
        )
    IndexStore(target).get(load_corpus(corpus_path), config.chunking, config.embedding)
    return target


def model_signature() -> ModelSignature:
    """Questions in; answers with contexts, usage, cost, latency and groundedness out."""
    strings = Array(DataType.string)
    outputs = [
        ColSpec(DataType.string, "answer"),
        ColSpec(strings, "contexts"),
        ColSpec(strings, "sources"),
        ColSpec(DataType.long, "tokens_prompt"),
        ColSpec(DataType.long, "tokens_completion"),
        ColSpec(DataType.double, "cost_usd", required=False),
        ColSpec(DataType.double, "latency_ms"),
        ColSpec(DataType.double, "hallucination_score", required=False),
        ColSpec(DataType.boolean, "hallucinated", required=False),
        ColSpec(DataType.boolean, "blocked"),
        ColSpec(DataType.string, "guardrail", required=False),
    ]
    return ModelSignature(Schema([ColSpec(DataType.string, "question")]), Schema(outputs))


def _requirements() -> list[str]:
    from importlib.metadata import version

    # Stated, not inferred: inference loads the model in a subprocess and takes seconds.
    return [f"llmops-mlflow=={version('llmops-mlflow')}", f"mlflow=={mlflow.__version__}"]


def _log_model(parent: Run, winner: Candidate, artifacts: dict[str, str]) -> str:
    tags = {"llmops.source_run_id": winner.run_id, "llmops.parent_run_id": parent.info.run_id}
    # Under `mlflow run -e register` the project's run is the one to log into.
    project_run = os.environ.get("MLFLOW_RUN_ID")
    where = (
        {"run_id": project_run}
        if project_run
        else {"experiment_id": parent.info.experiment_id, "run_name": f"register-{winner.name}"}
    )
    with mlflow.start_run(**where, tags=tags):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts=artifacts,
            signature=model_signature(),
            input_example={"question": ["What does the corpus say?"]},
            pip_requirements=_requirements(),
        )
    return info.model_uri


def _register(
    model_uri: str, model_name: str, parent: Run, winner: Candidate, metric: str
) -> ChampionInfo:
    client = mlflow.MlflowClient()
    previous = _alias_version(client, model_name, CHAMPION)
    metrics = {m: winner.metrics[m] for m in KEY_METRICS if m in winner.metrics}
    tags = {
        "llmops.source_run_id": winner.run_id,
        "llmops.parent_run_id": parent.info.run_id,
        "llmops.config_name": winner.name,
        "llmops.config_hash": winner.config_hash,
        "llmops.primary_metric": metric,
        **{f"llmops.metric.{name}": f"{value:.6g}" for name, value in metrics.items()},
    }
    version = mlflow.register_model(model_uri, model_name, tags=tags).version
    if previous is not None and previous != str(version):
        client.set_registered_model_alias(model_name, PREVIOUS, previous)
    client.set_registered_model_alias(model_name, CHAMPION, str(version))
    logger.info("registered %s version %s as @%s", model_name, version, CHAMPION)
    return ChampionInfo(
        model_name=model_name,
        version=str(version),
        model_uri=model_uri,
        source_run_id=winner.run_id,
        parent_run_id=parent.info.run_id,
        config_name=winner.name,
        config_hash=winner.config_hash,
        primary_metric=metric,
        metrics=metrics,
        previous_version=previous,
    )


def _alias_version(client: mlflow.MlflowClient, model_name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None
