"""The `llmops` command: parses arguments, calls one library function, formats the result."""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmops_mlflow import __version__
from llmops_mlflow.budget import BudgetExceeded
from llmops_mlflow.errors import DataError, LlmopsError

if TYPE_CHECKING:
    from llmops_mlflow.config import Sweep

# Piped output (logs, CI) keeps whole table rows instead of folding them at 80 columns.
stdout = Console(width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True)
SUMMARY_HEADERS = {
    "config": "config",
    "recall_at_k": "recall@k",
    "mrr": "MRR",
    "answer_similarity": "answer sim",
    "answer_f1": "answer F1",
    "hallucination_rate": "halluc. rate",
    "faithfulness": "faithful.",
    "latency_p50_ms": "p50 ms",
    "latency_p95_ms": "p95 ms",
    "tokens_prompt": "prompt tok",
    "tokens_completion": "compl. tok",
    "cost_usd_per_request": "USD/request",
    "errors": "errors",
}


@click.group()
@click.version_option(__version__, prog_name="llmops")
@click.option("-v", "--verbose", is_flag=True, help="Show debug diagnostics on stderr.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Offline-first RAG evaluation sweeps tracked in MLflow."""
    ctx.obj = {"verbose": verbose}
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _quiet_libraries() -> None:
    # Called after the libraries are imported: mlflow sets its own logger level on import.
    verbose = (click.get_current_context().find_root().obj or {}).get("verbose", False)
    for noisy in ("httpx", "chromadb", "alembic", "mlflow", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


@cli.command()
@click.argument("experiment", type=click.Path(path_type=Path))
@click.option("--no-progress", is_flag=True, help="Hide the progress bar (for logs and CI).")
@click.option("--no-cache", is_flag=True, help="Call the models even for unchanged configs.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".llmops/cache"),
    show_default=True,
    help="Where answers of unchanged configs are kept and replayed from.",
)
@click.option(
    "--dry-run", is_flag=True, help="Estimate calls, tokens and cost; call and log nothing."
)
def sweep(
    experiment: Path, no_progress: bool, no_cache: bool, cache_dir: Path, dry_run: bool
) -> None:
    """Run every configuration of the sweep file EXPERIMENT and log it to MLflow."""
    from llmops_mlflow.config import load_sweep
    from llmops_mlflow.sweep import estimate_sweep, run_sweep, summary_frame

    _quiet_libraries()
    cache = None if no_cache else cache_dir
    loaded = load_sweep(experiment)
    if dry_run:
        _print_estimate(estimate_sweep(experiment, cache), loaded.spec.budget_usd)
        return
    total = _total_samples(loaded)
    with _progress(total, enabled=not no_progress) as advance:
        result = run_sweep(experiment, on_sample=advance, cache_dir=cache)
    _print_summary(summary_frame(result))
    stdout.print(
        f"parent run: {result.parent_run_id}  experiment: {result.experiment}  "
        f"tracking: {result.tracking_uri}\n"
        f"indexes built: {result.indexes_built}, reused: {result.indexes_reused}; "
        f"model calls: {result.model_calls}, answers replayed from cache: {result.cache_hits}\n"
        "compare the configs with: mlflow ui"
    )
    if result.stopped:
        raise BudgetExceeded(f"{result.stopped}; the finished configs are logged")


@cli.command()
@click.option(
    "--input",
    "source",
    required=True,
    type=click.Path(path_type=Path),
    help="JSONL rows with contexts (list of strings), answer and optionally question.",
)
@click.option(
    "--output", "target", required=True, type=click.Path(path_type=Path), help="Scored JSONL."
)
@click.option(
    "--mode",
    type=click.Choice(["fast", "full"]),
    default="fast",
    show_default=True,
    help="fast: lexical signals; full: adds two scoring passes of the local model.",
)
@click.option("--threshold", type=float, help="Flag at or above this score; default: calibrated.")
@click.option(
    "--threads", type=click.IntRange(1, 64), default=2, show_default=True, help="Model threads."
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def detect(
    source: Path,
    target: Path,
    mode: str,
    threshold: float | None,
    threads: int,
    no_progress: bool,
) -> None:
    """Flag answers their contexts do not support, offline; adds hallucination_score and
    hallucinated to every row."""
    from llmops_mlflow.detector import HallucinationDetector, detect_file
    from llmops_mlflow.jsonl import read_jsonl

    _check_output(source, target)
    detector = HallucinationDetector(threshold=threshold, mode=mode, n_threads=threads)
    total = sum(1 for _ in read_jsonl(source))
    with _progress(total, enabled=not no_progress, label="detect") as advance:
        on_row = (lambda: advance(None)) if advance else None
        try:
            summary = detect_file(source, target, detector, on_row=on_row)
        except OSError as err:
            raise DataError(
                f"cannot write {target} ({err.strerror}); choose an --output in a writable folder"
            ) from err
    rate = summary.rows / summary.seconds if summary.seconds > 0 else float("inf")
    stdout.print(
        f"{summary.flagged} of {summary.rows} answers flagged (mode {summary.mode}, threshold "
        f"{summary.threshold:.3f}); {rate:.1f} answers/s; wrote {target}"
    )


def _check_output(source: Path, target: Path) -> None:
    """Refuse an output path that cannot be written before any answer is scored."""
    if target.is_dir():
        raise click.BadParameter(
            f"{target} is a folder; name the file to write", param_hint="--output"
        )
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        raise click.BadParameter(
            f"{target} is also the input; write the scored rows to another file",
            param_hint="--output",
        )
    folder = target.absolute().parent
    while not folder.exists():
        folder = folder.parent
    problem = "not a folder" if not folder.is_dir() else "not writable"
    if problem == "not a folder" or not os.access(folder, os.W_OK):
        raise click.BadParameter(
            f"cannot create {target}: {folder} is {problem}", param_hint="--output"
        )


def _constraint(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
    parsed = {}
    for value in values:
        metric, sep, ceiling = value.partition("=")
        try:
            parsed[metric.strip()] = float(ceiling)
        except ValueError:
            sep = ""
        if sep and math.isnan(parsed[metric.strip()]):
            raise click.BadParameter(f"the ceiling of {value!r} is not a number")
        if not sep or not metric.strip():
            raise click.BadParameter(
                f"expected METRIC=CEILING, e.g. hallucination_rate=0.2; got {value!r}"
            )
    return parsed


@cli.command()
@click.option("--parent-run", help="Parent run id of the sweep; default: the latest sweep.")
@click.option("--name", help="Registered model name; default: champion.model_name of the sweep.")
@click.option(
    "--constraint",
    "constraints",
    multiple=True,
    callback=_constraint,
    metavar="METRIC=CEILING",
    help="A ceiling the champion must stay under; adds to (or replaces) the sweep's own.",
)
@click.option("--metric", help="Primary metric; default: the sweep's.")
def register(
    parent_run: str | None, name: str | None, constraints: dict, metric: str | None
) -> None:
    """Register the best config of a sweep as a pyfunc model and alias it @champion."""
    from llmops_mlflow.registry import register_champion

    _quiet_libraries()
    # Empty strings come from `mlflow run -e register` with the defaults left unset.
    info = register_champion(parent_run or None, name or None, constraints, metric or None)
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in info.metrics.items())
    stdout.print(
        f"registered {info.model_name} version {info.version}: {info.champion_uri}\n"
        f"config: {info.config_name} (hash {info.config_hash}, run {info.source_run_id})\n"
        f"{info.primary_metric} is the primary metric; {metrics}\n"
        f"previous champion: "
        f"{f'version {info.previous_version} (now @previous)' if info.previous_version else 'none'}"
        f"\nserve it with: mlflow models serve -m {info.champion_uri} --env-manager local",
        highlight=False,
        soft_wrap=True,
    )


@cli.command()
@click.argument("model_uri")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--max-body-bytes",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(1),
    help="Larger requests are answered 413 before they reach the model.",
)
def serve(model_uri: str, host: str, port: int, max_body_bytes: int) -> None:
    """Serve MODEL_URI (e.g. models:/llmops-rag@champion) with /metrics on the same port."""
    from llmops_mlflow import tracking
    from llmops_mlflow.server import serve as run_server

    _quiet_libraries()
    tracking.configure()
    run_server(model_uri, host=host, port=port, max_body_bytes=max_body_bytes)


@cli.command("schema")
@click.option("--output", type=click.Path(path_type=Path), default=Path("experiments/schema.json"))
def schema(output: Path) -> None:
    """Write the JSON Schema of sweep files (for editors) to OUTPUT."""
    from llmops_mlflow.config import write_schema

    stdout.print(f"wrote {write_schema(output)}")


def _print_estimate(frame, budget_usd: float | None) -> None:
    import pandas as pd

    table = Table(title="dry run: nothing was called or logged")
    for column in frame.columns:
        table.add_column(
            column, justify="left" if column in ("config", "price_source") else "right"
        )
    for _, row in frame.iterrows():
        table.add_row(*[_fmt(row[c]) for c in frame.columns])
    stdout.print(table)
    costs = frame["cost_usd_est"]
    if "judge_cost_usd_est" in frame.columns:
        costs = pd.concat([costs, frame["judge_cost_usd_est"]])
    total = None if costs.isna().any() else float(costs.sum())
    judge_calls = int(frame["judge_calls_est"].sum()) if "judge_calls_est" in frame else 0
    stdout.print(
        f"calls: {int(frame['calls'].sum())}"
        + (f" (+ {judge_calls} judge calls)" if judge_calls else "")
        + ", prompt tokens (est.): "
        f"{int(frame['prompt_tokens_est'].sum()):,}, completion tokens (max): "
        f"{int(frame['completion_tokens_max'].sum()):,}, cost (est.): "
        f"{'unknown for some configs' if total is None else f'{total:.4f} USD'}"
    )
    if budget_usd is not None and total is not None and total > budget_usd:
        stdout.print(
            f"[yellow]the estimate exceeds budget_usd {budget_usd:g}: the sweep would "
            "stop early[/yellow]"
        )


def _total_samples(loaded: Sweep) -> int:
    from llmops_mlflow.datasets import load_questions

    dataset = load_questions(loaded.spec.dataset.questions, loaded.spec.dataset.limit)
    return len(dataset.questions) * len(loaded.configs)


@contextmanager
def _progress(total: int, enabled: bool, label: str = "sweep") -> Iterator:
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=False,
    )
    task = bar.add_task(label, total=total)
    with bar:
        yield lambda _sample_id: bar.advance(task)


def _print_summary(frame) -> None:
    # A metric no config has (faithfulness without a judge) would only be a column of dashes.
    shown = [
        c for c in frame.columns if c not in ("run_id", "config_hash") and frame[c].notna().any()
    ]
    table = Table(title="sweep summary")
    for column in shown:
        table.add_column(SUMMARY_HEADERS.get(column, column), overflow="fold")
    for _, row in frame.iterrows():
        table.add_row(*[_fmt(row[c]) for c in shown])
    stdout.print(table)


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)


def main() -> None:
    """Entry point: user mistakes become a message and exit code 2, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except LlmopsError as err:
        stderr.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        # click turns Ctrl-C into Abort; a sweep resumes where it stopped when rerun.
        stderr.print("interrupted: run the same command again to resume")
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(2)
