"""Benchmark: our sweep (indexes shared per chunking) against a tutorial loop that rebuilds.

Both sides answer the same questions with the same local model and embedder; the naive loop
rebuilds a Chroma index for every config, as LangChain tutorials do, while `run_sweep` builds
one per distinct (corpus, chunking, embedding) and also logs everything to MLflow. The two
run alternately in one process, so machine noise hits both alike.

    .venv/bin/python bench/sweep_vs_naive.py --questions 6 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "datasets" / "clapnq_dev"
CHUNK_SIZES = (400, 800)
KS = (2, 3, 4)


def main() -> int:
    args = _parse()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent (it sits beside the project in CI)", file=sys.stderr)
        return 0
    from llmops_mlflow import tracking  # noqa: F401 - sets telemetry defaults first

    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    corpus = _write_corpus(work, args.docs)
    questions = _write_questions(work, args.questions, corpus)
    uri = _migrated_store(work)
    naive_times, ours_times = [], []
    for repeat in range(args.repeats):
        naive_times.append(_naive(corpus, questions))
        sweep_file = _write_sweep(work, corpus, questions, work / f"index-{repeat}")
        ours_times.append(_ours(sweep_file, uri))
        print(
            f"repeat {repeat + 1}: naive {naive_times[-1]:.1f} s, sweep {ours_times[-1]:.1f} s",
            file=sys.stderr,
        )
    _report(naive_times, ours_times, args)
    return 0


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=6, help="answerable questions per config")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repetitions")
    parser.add_argument("--docs", type=int, default=None, help="use only the first N passages")
    return parser.parse_args()


def _write_corpus(work: Path, limit: int | None) -> Path:
    lines = (DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:limit]
    path = work / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _write_questions(work: Path, count: int, corpus: Path) -> Path:
    """Answerable questions whose gold passages are in the (possibly trimmed) corpus."""
    present = {json.loads(line)["doc_id"] for line in corpus.open(encoding="utf-8")}
    rows = [json.loads(line) for line in (DATA / "qa.jsonl").open(encoding="utf-8")]
    chosen = [r for r in rows if r["answerable"] and set(r["gold_doc_ids"]) <= present][:count]
    path = work / "questions.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for row in chosen:
            keep = {k: row[k] for k in ("id", "question", "reference_answer", "gold_doc_ids")}
            out.write(json.dumps(keep) + "\n")
    return path


def _write_sweep(work: Path, corpus: Path, questions: Path, index_dir: Path) -> Path:
    """A sweep file with a fresh index folder, so each repeat builds from cold."""
    prompts = work / "prompts"
    prompts.mkdir(exist_ok=True)
    (prompts / "concise.txt").write_bytes((REPO / "experiments/prompts/concise.txt").read_bytes())
    path = work / "bench.yaml"
    path.write_text(
        "name: bench-sweep\n"
        f"dataset: {{corpus: {corpus}, questions: {questions}}}\n"
        "base: {llm: {max_tokens: 48}, chunking: {chunk_overlap: 40}}\n"
        f"grid:\n  chunking.chunk_size: {list(CHUNK_SIZES)}\n  retriever.k: {list(KS)}\n"
        f"options: {{index_dir: {index_dir}}}\n",
        encoding="utf-8",
    )
    return path


def _migrated_store(work: Path) -> str:
    import mlflow

    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.search_experiments()
    return uri


def _ours(sweep_file: Path, uri: str) -> float:
    from llmops_mlflow.sweep import run_sweep

    start = time.perf_counter()
    # No answer cache: the naive loop generates every answer, so ours must too.
    result = run_sweep(sweep_file, tracking_uri=uri, cache_dir=None)
    elapsed = time.perf_counter() - start
    if result.indexes_built != len(CHUNK_SIZES):
        raise RuntimeError(f"expected {len(CHUNK_SIZES)} index builds, got {result.indexes_built}")
    if result.model_calls != len(CHUNK_SIZES) * len(KS) * _count_lines(sweep_file.parent):
        raise RuntimeError(f"expected every answer generated, got {result.model_calls} calls")
    return elapsed


def _count_lines(work: Path) -> int:
    return sum(1 for _ in (work / "questions.jsonl").open(encoding="utf-8"))


def _naive(corpus_file: Path, questions: Path) -> float:
    """The tutorial loop: split, Chroma.from_documents, chain, answer -- for every config."""
    import chromadb
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnablePassthrough
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from llmops_mlflow.config import LLMConfig
    from llmops_mlflow.embeddings import local_embedder
    from llmops_mlflow.llms import get_chat_model

    corpus = [json.loads(line) for line in corpus_file.open(encoding="utf-8")]
    asked = [json.loads(line)["question"] for line in questions.open(encoding="utf-8")]
    template = (REPO / "experiments/prompts/concise.txt").read_text(encoding="utf-8")
    prompt = ChatPromptTemplate.from_messages([("human", template)])
    llm = get_chat_model(LLMConfig(max_tokens=48))
    start = time.perf_counter()
    for size in CHUNK_SIZES:
        for k in KS:
            splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=40)
            docs = splitter.split_documents(
                [Document(d["text"], metadata={"doc_id": d["doc_id"]}) for d in corpus]
            )
            client = chromadb.EphemeralClient(
                settings=chromadb.config.Settings(anonymized_telemetry=False)
            )
            store = Chroma.from_documents(
                docs, local_embedder(), client=client, collection_name=f"naive-{size}-{k}"
            )
            retriever = store.as_retriever(search_kwargs={"k": k})
            chain = (
                {"context": retriever | _join, "question": RunnablePassthrough()}
                | prompt
                | llm
                | StrOutputParser()
            )
            for question in asked:
                chain.invoke(question)
            client.delete_collection(f"naive-{size}-{k}")
    return time.perf_counter() - start


def _join(docs: list) -> str:
    return "\n\n".join(f"[{i}] {d.page_content}" for i, d in enumerate(docs, 1))


def _report(naive: list[float], ours: list[float], args: argparse.Namespace) -> None:
    ratios = [n / o for n, o in zip(naive, ours, strict=True)]
    configs = len(CHUNK_SIZES) * len(KS)
    docs = args.docs or "all 597"
    print(
        f"| {configs} configs over {len(CHUNK_SIZES)} chunkings, {docs} clapnq passages, "
        f"{args.questions} questions each, {args.repeats} alternating repeats "
        "| naive loop | llmops sweep |"
    )
    print("|---|---|---|")
    print(
        f"| median wall time (s) | {statistics.median(naive):.1f} | {statistics.median(ours):.1f} |"
    )
    print(f"| index builds per sweep | {configs} | {len(CHUNK_SIZES)} |")
    print(f"| speed-up, median of per-repeat ratios | | **{statistics.median(ratios):.2f}x** |")


if __name__ == "__main__":
    sys.exit(main())
