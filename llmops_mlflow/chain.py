"""The RAG chain (LCEL): retrieve -> format -> prompt -> LLM, with contexts and usage kept."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from operator import itemgetter
from typing import Any

from langchain_core.documents import Document as LcDocument
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langchain_core.runnables import (
    Runnable,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
)
from langchain_core.vectorstores import VectorStore

from llmops_mlflow.config import RetrieverConfig
from llmops_mlflow.prompts import PromptTemplate


@dataclass(frozen=True)
class Answer:
    """One question answered by the chain, with everything needed to score and cost it."""

    answer: str
    contexts: tuple[str, ...]
    sources: tuple[str, ...]
    chunk_ids: tuple[str, ...]
    tokens_prompt: int
    tokens_completion: int
    latency_ms: float
    retrieval_ms: float
    tokens_estimated: bool = False


def answer_to_json(answer: Answer) -> dict[str, Any]:
    """The answer as plain JSON, for the result cache."""
    return asdict(answer)


def answer_from_json(data: dict[str, Any]) -> Answer:
    """Rebuild an answer stored by `answer_to_json`."""
    return Answer(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def number_contexts(texts: Iterable[str]) -> str:
    """Number the retrieved chunks so the model (and a reader) can refer to them."""
    return "\n\n".join(f"[{i}] {text.strip()}" for i, text in enumerate(texts, 1))


def format_context(docs: list[LcDocument]) -> str:
    """The prompt's {context}: the retrieved chunks, numbered."""
    return number_contexts(doc.page_content for doc in docs)


def build_chain(
    store: VectorStore, retriever: RetrieverConfig, template: PromptTemplate, llm: BaseChatModel
) -> Runnable:
    """Compose the chain; its output is a dict with `docs`, `message` and `retrieval_ms`."""
    search_kwargs: dict[str, Any] = {"k": retriever.k}
    if retriever.search_type == "mmr":
        search_kwargs |= {
            "fetch_k": max(retriever.fetch_k, retriever.k),
            "lambda_mult": retriever.lambda_mult,
        }
    retrieve = store.as_retriever(search_type=retriever.search_type, search_kwargs=search_kwargs)

    def timed_retrieve(question: str) -> dict[str, Any]:
        start = time.perf_counter()
        docs = retrieve.invoke(question)
        return {"docs": docs, "retrieval_ms": (time.perf_counter() - start) * 1000}

    def to_messages(inputs: dict[str, Any]) -> list[HumanMessage]:
        context = format_context(inputs["retrieved"]["docs"])
        return [HumanMessage(template.render(question=inputs["question"], context=context))]

    gather = RunnableParallel(
        question=RunnableLambda(lambda q: q), retrieved=RunnableLambda(timed_retrieve)
    )
    return (
        gather
        | RunnablePassthrough.assign(messages=RunnableLambda(to_messages))
        | RunnablePassthrough.assign(message=itemgetter("messages") | llm)
    )


def ask(chain: Runnable, question: str) -> Answer:
    """Run the chain on one question and collect answer, contexts, usage and latency."""
    start = time.perf_counter()
    output = chain.invoke(question)
    latency_ms = (time.perf_counter() - start) * 1000
    docs: list[LcDocument] = output["retrieved"]["docs"]
    message = output["message"]
    usage = message.usage_metadata or _estimate_usage(output["messages"], message.text)
    return Answer(
        answer=message.text.strip(),
        contexts=tuple(doc.page_content for doc in docs),
        sources=tuple(str(doc.metadata.get("doc_id", "")) for doc in docs),
        chunk_ids=tuple(str(doc.id or "") for doc in docs),
        tokens_prompt=int(usage.get("input_tokens", 0)),
        tokens_completion=int(usage.get("output_tokens", 0)),
        latency_ms=latency_ms,
        retrieval_ms=output["retrieved"]["retrieval_ms"],
        tokens_estimated=message.usage_metadata is None,
    )


def _estimate_usage(messages: list[HumanMessage], answer: str) -> dict[str, int]:
    """Count tokens with tiktoken when a provider reports no usage (flagged as estimated)."""
    import tiktoken

    from llmops_mlflow.assets import ensure_tiktoken_cache

    ensure_tiktoken_cache()
    encoding = tiktoken.get_encoding("cl100k_base")
    prompt = sum(len(encoding.encode(m.text)) for m in messages)
    return {"input_tokens": prompt, "output_tokens": len(encoding.encode(answer))}
