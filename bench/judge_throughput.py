"""Judge throughput: RagasJudge's concurrent loop against the ideal and against ragas.evaluate.

A loopback OpenAI-compatible endpoint answers every call after a fixed latency with valid
faithfulness JSON (statements, then verdicts), so the figures measure the scoring loop, not
a model. The ideal is what `concurrency` calls in flight would give:

    ideal samples/s = concurrency / (latency_s * judge calls per sample)

with the calls per sample counted at the endpoint, not assumed.

    .venv/bin/python bench/judge_throughput.py --samples 64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from llmops_mlflow.chain import Answer
from llmops_mlflow.datasets import Question
from llmops_mlflow.judge import JudgeConfig, RagasJudge
from llmops_mlflow.scoring import Sample

logger = logging.getLogger("judge_throughput")

STATEMENTS = {"statements": ["Green tea is brewed at 80 degrees.", "It steeps for two minutes."]}
VERDICTS = {
    "statements": [
        {"statement": s, "reason": "stated in the context", "verdict": 1}
        for s in STATEMENTS["statements"]
    ]
}
CONTEXT = "Green tea is brewed at 80 degrees Celsius for two minutes."


@dataclass(frozen=True)
class Run:
    """One timed scoring pass."""

    seconds: float
    calls: int
    scored: int


class Endpoint:
    """Counts the calls it answered; each waits `latency_s` before its reply."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.calls = 0
        self._lock = threading.Lock()

    def reply(self, payload: dict) -> dict:
        with self._lock:
            self.calls += 1
        time.sleep(self.latency_s)
        prompt = json.dumps(payload.get("messages", []))
        content = VERDICTS if "judge the faithfulness" in prompt else STATEMENTS
        return {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": payload.get("model", "judge"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps(content)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 400, "completion_tokens": 40, "total_tokens": 440},
        }


def _handler(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as served endpoints do; else ~40 ms of delayed ACK

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # the name http.server calls
            length = int(self.headers.get("Content-Length", 0))
            body = json.dumps(endpoint.reply(json.loads(self.rfile.read(length) or b"{}")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())

    return Handler


@contextmanager
def serve(endpoint: Endpoint) -> Iterator[str]:
    """Serve `endpoint` on loopback; yields the `/v1` base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(endpoint))
    server.daemon_threads = True
    server.request_queue_size = 128
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def make_samples(count: int) -> list[Sample]:
    """`count` distinct answered samples (distinct, so nothing could be served from a cache)."""
    samples = []
    for i in range(count):
        question = Question(f"q{i}", f"At what temperature is green tea brewed? (#{i})")
        answer = Answer(
            f"Green tea is brewed at 80 degrees for two minutes (#{i}).",
            (CONTEXT,),
            ("tea",),
            ("c1",),
            0,
            0,
            0.0,
            0.0,
        )
        samples.append(Sample(question, answer))
    return samples


def time_judge(url: str, endpoint: Endpoint, samples: list[Sample], concurrency: int) -> Run:
    """Score with RagasJudge (faithfulness only)."""
    config = JudgeConfig(
        model="judge", base_url=url, metrics=["faithfulness"], max_concurrency=concurrency
    )
    judge = RagasJudge(config)
    before = endpoint.calls
    start = time.perf_counter()
    scores = judge.score(samples)["faithfulness"]
    seconds = time.perf_counter() - start
    return Run(seconds, endpoint.calls - before, sum(s.scored for s in scores))


def time_ragas_evaluate(
    url: str, endpoint: Endpoint, samples: list[Sample], max_workers: int | None
) -> Run:
    """Score with `ragas.evaluate` and its own executor (its defaults unless max_workers)."""
    from openai import AsyncOpenAI
    from ragas import EvaluationDataset, RunConfig, evaluate
    from ragas.llms import llm_factory

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ragas.metrics import Faithfulness  # evaluate() takes the classic metrics

    rows = [
        {
            "user_input": s.question.question,
            "response": s.answer.answer,
            "retrieved_contexts": list(s.answer.contexts),
        }
        for s in samples
    ]
    client = AsyncOpenAI(base_url=url, api_key="not-needed")
    llm = llm_factory("judge", client=client)
    run_config = RunConfig() if max_workers is None else RunConfig(max_workers=max_workers)
    before = endpoint.calls
    start = time.perf_counter()
    result = evaluate(
        EvaluationDataset.from_list(rows),
        metrics=[Faithfulness()],
        llm=llm,
        run_config=run_config,
        show_progress=False,
    )
    seconds = time.perf_counter() - start
    values = result.to_pandas()["faithfulness"]
    return Run(seconds, endpoint.calls - before, int(values.notna().sum()))


def median_run(runs: list[Run]) -> Run:
    """The run of median duration."""
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


def report(name: str, run: Run, samples: int, latency_s: float, concurrency: int) -> dict:
    """Throughput, calls per sample as counted, and the ratio to the ideal."""
    per_sample = run.calls / samples
    ideal = concurrency / (latency_s * per_sample)
    throughput = samples / run.seconds
    return {
        "loop": name,
        "concurrency": concurrency,
        "seconds": round(run.seconds, 3),
        "calls_per_sample": round(per_sample, 3),
        "scored": f"{run.scored}/{samples}",
        "samples_per_s": round(throughput, 2),
        "ideal_samples_per_s": round(ideal, 2),
        "ratio_to_ideal": round(throughput / ideal, 3),
    }


def repeat(times: int, action: Callable[[], Run]) -> Run:
    return median_run([action() for _ in range(times)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("llmops_mlflow.judge").setLevel(logging.ERROR)  # no price: expected

    latency_s = args.latency_ms / 1000
    samples = make_samples(args.samples)
    endpoint = Endpoint(latency_s)
    with serve(endpoint) as url:
        time_judge(url, endpoint, samples[:2], args.concurrency)  # warm-up: imports, MiniLM
        ours = repeat(args.repeats, lambda: time_judge(url, endpoint, samples, args.concurrency))
        theirs = repeat(args.repeats, lambda: time_ragas_evaluate(url, endpoint, samples, None))
        like = repeat(
            args.repeats, lambda: time_ragas_evaluate(url, endpoint, samples, args.concurrency)
        )

    from ragas import RunConfig

    rows = [
        report("RagasJudge", ours, args.samples, latency_s, args.concurrency),
        report(
            "ragas.evaluate (defaults)", theirs, args.samples, latency_s, RunConfig().max_workers
        ),
        report(
            "ragas.evaluate (max_workers=concurrency)",
            like,
            args.samples,
            latency_s,
            args.concurrency,
        ),
    ]
    for row in rows:
        print(json.dumps(row))
    speedup = (args.samples / ours.seconds) / (args.samples / theirs.seconds)
    print(json.dumps({"judge_vs_ragas_evaluate_defaults": round(speedup, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
