"""Sweep files: pydantic models, YAML loading, grid expansion and stable config hashes."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmops_mlflow.assets import TIKTOKEN_ENCODINGS
from llmops_mlflow.errors import ConfigError
from llmops_mlflow.guardrails import GuardrailsConfig

SCHEMA_PATH = Path("experiments") / "schema.json"
M = TypeVar("M", bound=BaseModel)
# Each config is a full evaluation run; a grid past this is a typo (a list where a value was
# meant) or a sweep that would take weeks. Counting first keeps a huge grid from hanging.
MAX_CONFIGS = 1000
MAX_SHOWN_CHARS = 120
# PyYAML parses about 100 KB of YAML lists a second: a bigger file would seem to hang.
MAX_SWEEP_BYTES = 256 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChunkingConfig(_Strict):
    """How documents are split before they are embedded."""

    method: Literal["recursive", "token", "markdown"] = "recursive"
    chunk_size: int = Field(800, gt=0, description="characters (recursive, markdown) or tokens")
    chunk_overlap: int = Field(80, ge=0)
    encoding: str = Field("cl100k_base", description="tiktoken encoding for method=token")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"chunk_size ({self.chunk_size})"
            )
        return self

    @model_validator(mode="after")
    def _packaged_encoding(self) -> ChunkingConfig:
        # Any other encoding would be downloaded on first use, which offline never ends well.
        if self.encoding not in TIKTOKEN_ENCODINGS:
            raise ValueError(
                f"encoding {self.encoding!r} is not packaged; choose one of "
                f"{list(TIKTOKEN_ENCODINGS)}"
            )
        return self


class EmbeddingConfig(_Strict):
    """Which embedding model turns chunks and questions into vectors."""

    provider: str = "local"
    model: str = "all-MiniLM-L6-v2"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    batch_size: int = Field(32, gt=0)


class RetrieverConfig(_Strict):
    """How contexts are fetched from the index."""

    search_type: Literal["similarity", "mmr"] = "similarity"
    k: int = Field(4, gt=0, le=50)
    fetch_k: int = Field(20, gt=0, description="candidates MMR re-ranks")
    lambda_mult: float = Field(0.5, ge=0.0, le=1.0, description="MMR diversity weight")

    @model_validator(mode="after")
    def _enough_candidates(self) -> RetrieverConfig:
        # MMR picks k of fetch_k candidates: with fewer, it returns fewer than k contexts.
        if self.search_type == "mmr" and self.fetch_k < self.k:
            raise ValueError(
                f"fetch_k ({self.fetch_k}) must be at least k ({self.k}) for search_type mmr"
            )
        return self


class Price(_Strict):
    """A per-token price stated in the config, for models the catalogue does not know."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class LLMConfig(_Strict):
    """The chat model that writes the answer."""

    provider: str = "local"
    model: str = "smollm2-135m-instruct"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(128, gt=0)
    seed: int | None = 0
    n_ctx: int = Field(2048, gt=0, description="context window of the local model")
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10, description="retries on 429, 5xx and timeouts")
    max_concurrency: int = Field(4, gt=0, le=64, description="parallel calls to a remote model")
    price: Price | None = None


# Settings that change how a result is obtained but never the result itself; they stay out
# of the config hash so that changing them keeps cached answers and run comparisons valid.
EXECUTION_ONLY = {"llm": {"max_concurrency", "max_retries"}}


class RagConfig(_Strict):
    """One complete RAG configuration: a single point of a sweep."""

    name: str = "base"
    prompt: str = Field("concise", description="a file under experiments/prompts/ or a path")
    chunking: ChunkingConfig = ChunkingConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    retriever: RetrieverConfig = RetrieverConfig()
    llm: LLMConfig = LLMConfig()


class DatasetConfig(_Strict):
    """The corpus and the evaluation questions; paths are relative to the working directory."""

    corpus: str
    questions: str
    limit: int | None = Field(None, gt=0, description="evaluate only the first N questions")


# Mirrors scoring.SCORERS (a test keeps them equal) without importing the scorers' libraries.
RETRIEVAL_SCORERS = ("recall_at_k", "mrr", "hit_rate")  # need gold_doc_ids
REFERENCE_SCORERS = ("answer_similarity", "answer_f1")  # need a reference_answer
BUILTIN_SCORERS = (*RETRIEVAL_SCORERS, *REFERENCE_SCORERS)


class RunOptions(_Strict):
    """How the sweep runs, as opposed to what it evaluates."""

    index_dir: str = ".llmops/index"
    primary_metric: str | None = Field(
        None,
        description="the quality metric configs are compared on; default: answer_similarity, "
        "else answer_f1, else recall_at_k, whichever the dataset allows",
    )
    scorers: list[str] | None = Field(
        None,
        description="the built-in scorers to run; default: every one the dataset allows "
        "(the detector and the judge have their own sections)",
    )

    @model_validator(mode="after")
    def _known_scorers(self) -> RunOptions:
        unknown = [name for name in self.scorers or () if name not in BUILTIN_SCORERS]
        if unknown:
            raise ValueError(f"unknown scorer(s) {unknown}; choose from {list(BUILTIN_SCORERS)}")
        _check_quality_metric(self.primary_metric, SWEEP_PRIMARY_METRICS)
        return self


JUDGE_METRICS = ("faithfulness", "response_relevancy", "context_precision", "context_recall")
# What a champion can be picked on: higher is better for each (hallucination_rate is not).
QUALITY_METRICS = (*BUILTIN_SCORERS, *JUDGE_METRICS, "groundedness")
# What a sweep compares configs on: any quality metric it can compute.
SWEEP_PRIMARY_METRICS = QUALITY_METRICS


def _check_quality_metric(name: str | None, choices: tuple[str, ...]) -> None:
    """A misspelt primary metric would otherwise fail only once every config has run."""
    if name is not None and name not in choices:
        raise ValueError(f"primary_metric {name!r} is not one of {list(choices)}")


class JudgeConfig(_Strict):
    """The judge model that scores answers with RAGAS metrics."""

    provider: Literal["openai"] = "openai"
    model: str = Field(min_length=1, description="judge model name as the endpoint knows it")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; None: OpenAI")
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, gt=0)
    timeout_s: float = Field(60.0, gt=0)
    max_concurrency: int = Field(4, gt=0, le=64, description="judge calls in flight at once")
    max_retries: int = Field(2, ge=0, le=10, description="re-asks when the output does not parse")
    http_retries: int = Field(2, ge=0, le=10, description="client retries on 429, 5xx, errors")
    metrics: list[str] = Field(default_factory=lambda: list(JUDGE_METRICS))
    price: Price | None = None

    @model_validator(mode="after")
    def _known_metrics(self) -> JudgeConfig:
        unknown = [name for name in self.metrics if name not in JUDGE_METRICS]
        if unknown:
            raise ValueError(
                f"unknown judge metric(s) {unknown}; choose from {list(JUDGE_METRICS)}"
            )
        return self


class DetectorConfig(_Strict):
    """The offline hallucination detector that scores every answer against its contexts."""

    enabled: bool = True
    mode: Literal["fast", "full"] = Field(
        "fast",
        description="fast: lexical signals, thousands of answers/s; full: adds two scoring "
        "passes of the local model (better on swapped names, about 1 answer/s)",
    )
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="flag at or above this score; default: calibrated"
    )


class ChampionConfig(_Strict):
    """How `llmops register` picks and names the champion of this sweep."""

    model_name: str = Field("llmops-rag", pattern=r"^[A-Za-z0-9_.-]+$")
    primary_metric: str | None = Field(None, description="default: the sweep's primary metric")
    constraints: dict[str, float] = Field(
        default_factory=dict,
        description="ceilings a champion must stay under, e.g. hallucination_rate: 0.2",
    )

    @model_validator(mode="after")
    def _known_metric(self) -> ChampionConfig:
        _check_quality_metric(self.primary_metric, QUALITY_METRICS)
        bad = {name: value for name, value in self.constraints.items() if math.isnan(value)}
        if bad:
            raise ValueError(f"constraints {bad} are not numbers; give each a ceiling")
        return self


class Variant(_Strict):
    """A named list entry: a partial override of the base config."""

    name: str
    overrides: dict[str, Any] = Field(default_factory=dict)


class SweepFile(_Strict):
    """The YAML document of a sweep."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    experiment: str | None = Field(None, description="MLflow experiment; default: the name")
    description: str = ""
    dataset: DatasetConfig
    base: RagConfig = RagConfig()
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    variants: list[Variant] = Field(default_factory=list)
    budget_usd: float | None = Field(
        None, gt=0, description="hard cap on model spend; the sweep stops before crossing it"
    )
    options: RunOptions = RunOptions()
    judge: JudgeConfig | None = Field(None, description="RAGAS metrics with this judge model")
    detector: DetectorConfig = DetectorConfig()
    champion: ChampionConfig = Field(
        ChampionConfig(), description="how `llmops register` picks this sweep's champion"
    )
    guardrails: GuardrailsConfig = GuardrailsConfig()


@dataclass(frozen=True)
class ResolvedConfig:
    """A RagConfig with its prompt text and the hash that identifies it."""

    config: RagConfig
    prompt_path: Path
    prompt_text: str
    config_hash: str

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class Sweep:
    """A loaded sweep file with every configuration expanded."""

    path: Path
    spec: SweepFile
    configs: tuple[ResolvedConfig, ...]
    file_digest: str

    @property
    def experiment_name(self) -> str:
        return self.spec.experiment or self.spec.name


def load_sweep(path: str | Path) -> Sweep:
    """Load, validate and expand a sweep file.

    Example:
        >>> sweep = load_sweep("experiments/quickstart.yaml")
        >>> [c.name for c in sweep.configs]
    """
    path = Path(path)
    raw = _read_yaml(path)
    spec = _validate(SweepFile, raw, path)
    configs = tuple(_resolve(config, path) for config in expand(spec, source=path))
    _check_unique_names(configs, path)
    _check_writable(Path(spec.options.index_dir), path, "options.index_dir")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return Sweep(path=path, spec=spec, configs=configs, file_digest=digest)


def _check_writable(target: Path, sweep_path: Path, key: str) -> None:
    """A folder the sweep writes to must lie inside the working directory or beside the file.

    A shared or downloaded sweep file must not be able to write over arbitrary paths.
    """
    resolved = target.resolve()
    if resolved.exists() and not resolved.is_dir():
        raise ConfigError(
            f"{sweep_path}: {key} {str(target)!r} is a file, not a folder; name a folder "
            "(it is created if missing)"
        )
    roots = (Path.cwd().resolve(), sweep_path.parent.resolve())
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ConfigError(
            f"{sweep_path}: {key} {str(target)!r} resolves to {resolved}, outside the working "
            f"directory and the sweep file's folder; use a path inside the project"
        )


MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error.

    PyYAML keeps the last of two `grid:` sections without a word, which silently drops the
    first one.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[tuple[str, str], int] = {}
        for key_node, _ in node.value:
            # Keys merged in with `<<: *anchor` may be overridden: only written keys count.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                continue
            key, line = (key_node.tag, key_node.value), key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key[1]!r} is given twice (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; name a sweep file, e.g. {path / 'sweep.yaml'}")
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path}")
    if path.stat().st_size > MAX_SWEEP_BYTES:
        raise ConfigError(
            f"{path} is larger than {MAX_SWEEP_BYTES // 1024} KiB; a sweep file holds settings, "
            "not data: point dataset.corpus and dataset.questions at the data"
        )
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text: {err}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from err
    if data is None:
        raise ConfigError(
            f"{path} is empty; a sweep file needs at least 'name' and 'dataset' "
            "(see experiments/quickstart.yaml)"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level (keys such as name, dataset, base, "
            f"grid), got a {type(data).__name__}"
        )
    return data


def _validate(model: type[M], data: dict[str, Any], path: Path, where: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, path, where)) from err


def _describe(err: ValidationError, path: Path, where: str) -> str:
    lines = [f"{path}: {err.error_count()} invalid setting(s){where}"]
    for item in err.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            hint = "unknown key; check its spelling against experiments/schema.json"
            lines.append(f"  {key}: {hint}")
            continue
        if item["type"] == "missing":
            lines.append(f"  {key}: {item['msg']}")
            continue
        lines.append(f"  {key}: {item['msg']} (got {_shown(item.get('input'))})")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    """A value as the message shows it: whole if short, else its start (YAML aliases can make
    a small file decode to a huge value)."""
    text = repr(value)
    if len(text) <= MAX_SHOWN_CHARS:
        return text
    return f"{text[:MAX_SHOWN_CHARS]}... ({type(value).__name__} of {len(text):,} characters)"


def expand(spec: SweepFile, source: Path = Path("<sweep>")) -> list[RagConfig]:
    """Expand variants x grid into concrete configs, each with a readable unique name."""
    base = spec.base.model_dump()
    variants = spec.variants or [Variant(name=spec.base.name)]
    for key, values in spec.grid.items():
        if not values:
            raise ConfigError(f"{source}: grid.{key} is an empty list; give it at least one value")
    _check_size(spec, len(variants), source)
    keys = list(spec.grid)
    configs = []
    for variant in variants:
        merged = _apply(base, variant.overrides, source, f"variant {variant.name!r}")
        for values in itertools.product(*(spec.grid[key] for key in keys)):
            data = _apply(merged, dict(zip(keys, values, strict=True)), source, "grid")
            data["name"] = _point_name(variant.name, keys, values, bool(spec.variants))
            configs.append(_validate(RagConfig, data, source, f" in config {_shown(data['name'])}"))
    return configs


def _check_size(spec: SweepFile, variants: int, source: Path) -> None:
    sizes = [len(values) for values in spec.grid.values()]
    total = math.prod(sizes) * variants
    if total > MAX_CONFIGS:
        factors = " x ".join(
            [f"{variants} variant(s)"]
            + [f"{size} {key}" for key, size in zip(spec.grid, sizes, strict=True)]
        )
        raise ConfigError(
            f"{source}: the sweep expands to {total:,} configs ({factors}), over the limit of "
            f"{MAX_CONFIGS:,}; narrow the grid or split it into several sweep files"
        )


def _apply(base: dict[str, Any], overrides: dict[str, Any], source: Path, what: str) -> dict:
    data = copy.deepcopy(base)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(
                    f"{source}: {what} sets {dotted!r}, but {part!r} is not a section of a "
                    "config (sections: chunking, embedding, retriever, llm)"
                )
            node = node[part]
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf] = {**node[leaf], **value}
        else:
            node[leaf] = value
    return data


def _point_name(variant: str, keys: list[str], values: tuple, named: bool) -> str:
    parts = [variant] if named or not keys else []
    parts += [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in zip(keys, values, strict=True)]
    return ",".join(parts) or variant


def _resolve(config: RagConfig, sweep_path: Path) -> ResolvedConfig:
    from llmops_mlflow.prompts import load_template  # prompts sits beside config

    try:
        template_path, text = load_template(config.prompt, sweep_path.parent / "prompts")
    except ConfigError as err:
        raise ConfigError(f"{sweep_path}: config {config.name!r}: {err}") from err
    return ResolvedConfig(
        config=config,
        prompt_path=template_path,
        prompt_text=text,
        config_hash=config_hash(config, text),
    )


def config_hash(config: RagConfig, prompt_text: str) -> str:
    """A stable digest of everything that changes a result: the config and the prompt text.

    The display name is left out, so renaming a config keeps its hash.
    """
    payload = config.model_dump(mode="json", exclude={"name": True, **EXECUTION_ONLY})
    payload["prompt"] = hashlib.sha256(prompt_text.encode()).hexdigest()
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check_unique_names(configs: tuple[ResolvedConfig, ...], path: Path) -> None:
    """Configs differ in content and in name: runs, comparisons and the champion go by name."""
    seen: dict[str, str] = {}
    names: set[str] = set()
    for item in configs:
        if not item.name.strip():
            raise ConfigError(f"{path}: a config has an empty name; give each variant a name")
        if item.config_hash in seen:
            raise ConfigError(
                f"{path}: configs {seen[item.config_hash]!r} and {item.name!r} are identical; "
                "remove one of them"
            )
        if item.name in names:
            raise ConfigError(
                f"{path}: two configs are named {item.name!r}; give each variant its own name"
            )
        seen[item.config_hash] = item.name
        names.add(item.name)


def flatten(config: RagConfig) -> dict[str, str]:
    """The config as MLflow params: dotted keys, string values."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        else:
            flat[prefix] = "" if value is None else str(value)

    walk("", config.model_dump(mode="json"))
    return flat


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a sweep file, for editors and for `experiments/schema.json`."""
    schema = SweepFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "llmops-mlflow sweep file"
    return schema


def write_schema(path: str | Path = SCHEMA_PATH) -> Path:
    """Write the JSON Schema of sweep files to `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        raise ConfigError(
            f"cannot write the schema to {path} ({err.strerror}); choose another --output"
        ) from err
    return path
