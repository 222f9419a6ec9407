"""The `llmops` command: parses arguments, calls one library function, formats the result."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmops_mlflow import __version__
from llmops_mlflow.budget import BudgetExceeded
from llmops_mlflow.errors import LlmopsError

# Piped output (logs, CI) keeps whole table rows instead of folding them at 80 columns.
stdout = Console(width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True)
SUMMARY_HEADERS = {
    "config": "config",
    "recall_at_k": "recall@k",
    "mrr": "MRR",
    "answer_similarity": "answer sim",
    "answer_f1": "answer F1",
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
    type=click.Path(path_type=Path),
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
    if dry_run:
        _print_estimate(estimate_sweep(experiment, cache), load_sweep(experiment).spec.budget_usd)
        return
    total = _total_samples(load_sweep(experiment))
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


@cli.command("schema")
@click.option("--output", type=click.Path(path_type=Path), default=Path("experiments/schema.json"))
def schema(output: Path) -> None:
    """Write the JSON Schema of sweep files (for editors) to OUTPUT."""
    from llmops_mlflow.config import write_schema

    stdout.print(f"wrote {write_schema(output)}")


def _print_estimate(frame, budget_usd: float | None) -> None:
    table = Table(title="dry run: nothing was called or logged")
    for column in frame.columns:
        table.add_column(
            column, justify="left" if column in ("config", "price_source") else "right"
        )
    for _, row in frame.iterrows():
        table.add_row(*[_fmt(row[c]) for c in frame.columns])
    stdout.print(table)
    costs = frame["cost_usd_est"]
    total = None if costs.isna().any() else float(costs.sum())
    stdout.print(
        f"calls: {int(frame['calls'].sum())}, prompt tokens (est.): "
        f"{int(frame['prompt_tokens_est'].sum()):,}, completion tokens (max): "
        f"{int(frame['completion_tokens_max'].sum()):,}, cost (est.): "
        f"{'unknown for some configs' if total is None else f'{total:.4f} USD'}"
    )
    if budget_usd is not None and total is not None and total > budget_usd:
        stdout.print(
            f"[yellow]the estimate exceeds budget_usd {budget_usd:g}: the sweep would "
            "stop early[/yellow]"
        )


def _total_samples(loaded) -> int:
    from llmops_mlflow.datasets import load_questions

    dataset = load_questions(loaded.spec.dataset.questions, loaded.spec.dataset.limit)
    return len(dataset.questions) * len(loaded.configs)


@contextmanager
def _progress(total: int, enabled: bool) -> Iterator:
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("[bold]sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=False,
    )
    task = bar.add_task("sweep", total=total)
    with bar:
        yield lambda _sample_id: bar.advance(task)


def _print_summary(frame) -> None:
    table = Table(title="sweep summary")
    for column in frame.columns:
        if column != "run_id":
            table.add_column(column, overflow="fold")
    for _, row in frame.iterrows():
        table.add_row(*[_fmt(row[c]) for c in frame.columns if c != "run_id"])
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
        stderr.print(f"[red]error:[/red] {err}", highlight=False)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        stderr.print("aborted")
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(2)
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(130)
