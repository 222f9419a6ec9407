"""Sweep files: validation messages, grid expansion, hashes and the JSON Schema."""

from __future__ import annotations

import json
import time

import pytest

from llmops_mlflow.config import (
    RagConfig,
    config_hash,
    flatten,
    json_schema,
    load_sweep,
)
from llmops_mlflow.errors import ConfigError

from .conftest import REPO

BASE = """\
name: demo
dataset: {corpus: "@CORPUS@", questions: "@QUESTIONS@"}
options: {index_dir: "@INDEX@"}
"""


def test_grid_expands_to_the_cartesian_product(write_sweep):
    path = write_sweep(
        BASE + "grid:\n  chunking.chunk_size: [200, 400]\n  retriever.k: [1, 2, 3]\n"
    )
    sweep = load_sweep(path)
    assert [c.name for c in sweep.configs] == [
        "chunk_size=200,k=1",
        "chunk_size=200,k=2",
        "chunk_size=200,k=3",
        "chunk_size=400,k=1",
        "chunk_size=400,k=2",
        "chunk_size=400,k=3",
    ]
    assert {c.config.chunking.chunk_size for c in sweep.configs} == {200, 400}


def test_variants_times_grid_and_nested_overrides(write_sweep):
    path = write_sweep(
        BASE + "variants:\n"
        "  - {name: small, overrides: {chunking: {chunk_size: 100, chunk_overlap: 10}}}\n"
        "  - {name: cited, overrides: {prompt: cite, llm.max_tokens: 32}}\n"
        "grid:\n  retriever.k: [1, 2]\n"
    )
    configs = load_sweep(path).configs
    assert [c.name for c in configs] == ["small,k=1", "small,k=2", "cited,k=1", "cited,k=2"]
    assert configs[0].config.chunking.chunk_size == 100
    assert configs[0].config.chunking.method == "recursive"
    assert configs[2].config.llm.max_tokens == 32
    assert configs[2].prompt_path.name == "cite.txt"


def test_a_sweep_without_grid_or_variants_is_the_base_config(write_sweep):
    sweep = load_sweep(write_sweep(BASE))
    assert [c.name for c in sweep.configs] == ["base"]
    assert sweep.experiment_name == "demo"


def test_hash_ignores_the_name_but_not_the_prompt_or_settings():
    config = RagConfig()
    assert config_hash(config, "p {question} {context}") == config_hash(
        config.model_copy(update={"name": "renamed"}), "p {question} {context}"
    )
    assert config_hash(config, "a") != config_hash(config, "b")
    changed = RagConfig.model_validate({"retriever": {"k": 9}})
    assert config_hash(config, "a") != config_hash(changed, "a")


def test_hash_is_stable_across_processes():
    # A literal: if this changes, every stored run's hash stops matching its config.
    assert config_hash(RagConfig(), "{question} {context}") == "035b812d81fb46b0"


def test_flatten_gives_dotted_string_params():
    flat = flatten(RagConfig())
    assert flat["chunking.chunk_size"] == "800"
    assert flat["llm.base_url"] == ""
    assert flat["retriever.search_type"] == "similarity"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        pytest.param(
            BASE + "grid:\n  retriever.k: []\n",
            r"grid\.retriever\.k is an empty list",
            id="empty-grid",
        ),
        pytest.param(
            BASE + "base: {retreiver: {k: 2}}\n", r"base\.retreiver: unknown key", id="unknown-key"
        ),
        pytest.param(
            BASE + "base: {retriever: {k: many}}\n",
            r"base\.retriever\.k: .*valid integer.*'many'",
            id="wrong-type",
        ),
        pytest.param(
            BASE + "grid:\n  retriever.k: [0]\n",
            r"retriever\.k: .*greater than 0",
            id="out-of-range-in-grid",
        ),
        pytest.param(
            BASE + "grid:\n  retreiver.k: [1]\n",
            r"'retreiver' is not a section",
            id="unknown-section-in-grid",
        ),
        pytest.param(
            BASE + "base: {chunking: {chunk_size: 100, chunk_overlap: 100}}\n",
            r"chunk_overlap \(100\) must be smaller than chunk_size",
            id="overlap",
        ),
        pytest.param(
            BASE + "base: {prompt: nosuch}\n",
            r"prompt 'nosuch' not found.*cite, concise",
            id="missing-prompt",
        ),
        pytest.param("name: x\n", r"dataset: Field required", id="no-dataset"),
        pytest.param(BASE + "grid:\n  retriever.k: [1, 1]\n", r"are identical", id="duplicate"),
        pytest.param("name: [unclosed\n", r"invalid YAML at line 2", id="malformed-yaml"),
        pytest.param("- a\n- b\n", r"expected a mapping at the top level", id="not-a-mapping"),
        pytest.param(
            "name: 'bad name!'\n" + BASE.split("\n", 1)[1],
            r"name: String should match",
            id="bad-name",
        ),
        pytest.param(
            BASE.replace("options: {", "options: {scorers: [recall_at_k, bleu], "),
            r"unknown scorer\(s\) \['bleu'\]; choose from \['recall_at_k'",
            id="unknown-scorer",
        ),
        pytest.param(
            BASE + "judge: {model: j, metrics: [faithfulnes]}\n",
            r"unknown judge metric\(s\) \['faithfulnes'\]",
            id="unknown-judge-metric",
        ),
        pytest.param(
            BASE + "detector: {mode: slow}\n", r"detector\.mode: .*'fast' or 'full'", id="mode"
        ),
        pytest.param(
            BASE + "base: {chunking: {method: token, encoding: p50k_base}}\n",
            r"encoding 'p50k_base' is not packaged; choose one of \['cl100k_base', 'o200k_base'\]",
            id="encoding-not-packaged",
        ),
        pytest.param(
            BASE.replace("options: {", "options: {primary_metric: bleu, "),
            r"primary_metric 'bleu' is not one of \['recall_at_k', 'mrr'",
            id="unknown-primary-metric",
        ),
        pytest.param(
            BASE + "champion: {primary_metric: recal_at_k}\n",
            r"champion: .*primary_metric 'recal_at_k' is not one of",
            id="unknown-champion-metric",
        ),
        pytest.param(
            BASE + "champion: {constraints: {hallucination_rate: .nan}}\n",
            r"constraints \{'hallucination_rate': nan\} are not numbers",
            id="nan-ceiling",
        ),
        pytest.param(
            BASE + "grid:\n  retriever.k: [1, 2]\nbase: {}\ngrid:\n  llm.seed: [1, 2]\n",
            r"invalid YAML at line 7, column 1: key 'grid' is given twice \(lines 4 and 7\)",
            id="section-given-twice",
        ),
        pytest.param(
            BASE + "base: {retriever: {k: 1, k: 2}}\n",
            r"key 'k' is given twice \(lines 4 and 4\)",
            id="key-given-twice",
        ),
        pytest.param("", r"is empty; a sweep file needs at least 'name'", id="empty-file"),
        pytest.param("# only a comment\n", r"is empty", id="only-a-comment"),
        pytest.param("just words\n", r"expected a mapping .*got a str", id="a-scalar"),
        pytest.param(
            BASE + "variants:\n  - {name: a, overrides: {retriever.k: 1}}\n"
            "  - {name: a, overrides: {retriever.k: 2}}\n",
            r"two configs are named 'a'; give each variant its own name",
            id="duplicate-variant-names",
        ),
        pytest.param(
            BASE + "variants: [{name: ' ', overrides: {}}]\n",
            r"a config has an empty name",
            id="empty-variant-name",
        ),
        pytest.param(
            BASE + "base: {retriever: {search_type: mmr, k: 10, fetch_k: 5}}\n",
            r"fetch_k \(5\) must be at least k \(10\) for search_type mmr",
            id="mmr-fetch-k-below-k",
        ),
        pytest.param(
            BASE
            + "grid:\n"
            + "".join(
                f"  llm.{key}: {list(range(1, 11))}\n"
                for key in ("seed", "max_tokens", "n_ctx", "max_retries")
            ),
            r"expands to 10,000 configs \(1 variant\(s\) x 10 llm\.seed x 10 llm\.max_tokens"
            r".*over the limit of 1,000; narrow the grid",
            id="huge-grid",
        ),
    ],
)
def test_bad_sweep_files_name_the_key_and_value(write_sweep, body, match):
    path = write_sweep(body)
    with pytest.raises(ConfigError, match=match) as caught:
        load_sweep(path)
    assert str(path) in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="sweep file not found"):
        load_sweep(tmp_path / "nope.yaml")


def test_a_folder_is_not_a_sweep_file(tmp_path):
    with pytest.raises(ConfigError, match=r"is a folder; name a sweep file, e\.g\. .*sweep\.yaml"):
        load_sweep(tmp_path)


def test_a_huge_sweep_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: x\ngrid:\n  retriever.k: [" + "1, " * 200_000 + "1]\n", encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"huge\.yaml is larger than 256 KiB; a sweep file holds"):
        load_sweep(path)
    assert time.perf_counter() - started < 1.0


def test_non_utf8_file_is_a_config_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_sweep(path)


def test_keys_merged_from_an_anchor_may_be_overridden(write_sweep):
    path = write_sweep(
        BASE + "variants:\n"
        "  - {name: small, overrides: {chunking: &small {chunk_size: 300, chunk_overlap: 0}}}\n"
        "  - name: overlapping\n"
        "    overrides:\n"
        "      chunking: {<<: *small, chunk_overlap: 10}\n"
    )
    chunkings = [c.config.chunking for c in load_sweep(path).configs]
    assert [(c.chunk_size, c.chunk_overlap) for c in chunkings] == [(300, 0), (300, 10)]


def test_yaml_tags_that_build_objects_are_refused(write_sweep):
    path = write_sweep("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_sweep(path)


def test_committed_schema_is_up_to_date():
    committed = json.loads((REPO / "experiments" / "schema.json").read_text(encoding="utf-8"))
    assert committed == json_schema(), "run `llmops schema` to refresh experiments/schema.json"


def test_project_sweeps_load():
    for path in sorted((REPO / "experiments").glob("*.yaml")):
        assert load_sweep(path).configs, path


@pytest.mark.parametrize(
    "index_dir",
    [
        pytest.param("/etc/llmops-index", id="absolute-elsewhere"),
        pytest.param("../../../../../../tmp/escape", id="dot-dot"),
    ],
)
def test_index_dir_cannot_escape_the_project(write_sweep, tmp_path, monkeypatch, index_dir):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(BASE.replace('"@INDEX@"', f'"{index_dir}"'))
    with pytest.raises(ConfigError, match=r"options\.index_dir .* outside the working directory"):
        load_sweep(path)


def test_index_dir_inside_the_project_is_fine(write_sweep, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(BASE.replace('"@INDEX@"', '".llmops/index"'))
    assert load_sweep(path).spec.options.index_dir == ".llmops/index"


def test_builtin_scorer_names_match_the_registry():
    from llmops_mlflow.config import BUILTIN_SCORERS
    from llmops_mlflow.scoring import SCORERS

    assert set(BUILTIN_SCORERS) == set(SCORERS)


def test_a_grid_of_a_million_configs_is_refused_before_it_is_expanded(write_sweep):
    values = list(range(1, 11))
    keys = ("retriever.k", "retriever.fetch_k", "llm.seed", "llm.max_tokens", "llm.n_ctx")
    grid = "".join(f"  {key}: {values}\n" for key in (*keys, "chunking.chunk_size"))
    path = write_sweep(BASE + "grid:\n" + grid)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"expands to 1,000,000 configs"):
        load_sweep(path)
    assert time.perf_counter() - started < 1.0


def test_a_yaml_alias_bomb_gives_a_short_message(write_sweep):
    lines = [
        "variants:",
        "  - name: v",
        "    overrides:",
        "      _x:",
        "        - &a [x,x,x,x,x,x]",
    ]
    for previous, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"        - &{name} [{', '.join([f'*{previous}'] * 6)}]")
    path = write_sweep(BASE + "\n".join(lines) + "\ngrid: {retriever.k: [*g]}\n")
    with pytest.raises(
        ConfigError, match=r"retriever\.k: .*\(list of [\d,]+ characters\)"
    ) as caught:
        load_sweep(path)
    assert len(str(caught.value)) < 1000


def test_index_dir_that_is_a_file_is_refused(write_sweep, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("a file", encoding="utf-8")
    path = write_sweep(BASE.replace('"@INDEX@"', '"taken"'))
    with pytest.raises(ConfigError, match=r"options\.index_dir 'taken' is a file, not a folder"):
        load_sweep(path)


def test_every_quality_metric_can_be_the_sweeps_primary_metric():
    from llmops_mlflow.config import QUALITY_METRICS, SWEEP_PRIMARY_METRICS

    assert set(SWEEP_PRIMARY_METRICS) == set(QUALITY_METRICS)
