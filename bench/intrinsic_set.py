"""Build a seeded intrinsic-hallucination dev set from the answerable clapnq questions.

Every hallucinated answer reuses words of its own passage, so lexical novelty alone cannot
find it: a name swapped for another name of the passage, a number changed to another number
of the passage, a negation inserted (or removed), or two subjects exchanged.

    python bench/intrinsic_set.py --seed 7 --output bench/data/intrinsic_seed7.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger("intrinsic_set")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = REPO_ROOT / ".." / "shared" / "datasets" / "clapnq_dev" / "qa.jsonl"
DEFAULT_OUTPUT = REPO_ROOT / "bench" / "data" / "intrinsic.jsonl"
SPLITS = ("all", "train", "test")
PERTURBATIONS = ("name_swap", "number_swap", "negation", "subject_swap")

# Capitalised words that start sentences or clauses rather than name anything.
NOT_NAMES = frozenset(
    "a an the in on at of for to by as it its he she they we i this that these those there "
    "however after before during when while since if but and or his her their our also "
    "some many most one two three each both all other such".split()
)
AUXILIARIES = frozenset(
    "is are was were can could will would should may might must has have had does do did".split()
)
NEGATIONS = frozenset({"not", "never", "n't"})
NUMBER_WORDS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty "
    "hundred thousand million billion first second third fourth fifth".split()
)
NUMBER_RE = re.compile(r"^\d[\d,.]*(?:st|nd|rd|th|s)?$")
SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(])")


@dataclass(frozen=True)
class Question:
    """One answerable clapnq question with its gold passage and reference answer."""

    id: str
    question: str
    contexts: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class Row:
    """One labelled answer of the intrinsic set."""

    id: str
    question: str
    contexts: list[str]
    answer: str
    hallucinated: bool
    perturbation: str


Perturb = Callable[[list[str], list[str], random.Random], list[str] | None]


def split_of(question_id: str) -> str:
    """Stable half of a question, so fitting and reporting never share a question."""
    digest = hashlib.sha256(question_id.encode()).digest()
    return "train" if digest[0] % 2 == 0 else "test"


def load_questions(path: Path, split: str) -> list[Question]:
    """Answerable questions of `split` with a non-empty reference and gold passage."""
    if not path.is_file():
        raise FileNotFoundError(f"clapnq questions not found at {path}")
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        if not (raw["answerable"] and raw["reference_answer"].strip() and raw["contexts"]):
            continue
        if split != "all" and split_of(raw["id"]) != split:
            continue
        questions.append(
            Question(raw["id"], raw["question"], tuple(raw["contexts"]), raw["reference_answer"])
        )
    return questions


def entity_spans(words: list[str]) -> list[tuple[int, int]]:
    """Runs of capitalised words that name something; a lone sentence-initial word does not."""
    spans, start = [], None
    for i, word in enumerate([*words, ""]):
        capital = word[:1].isupper() and bare(word).lower() not in NOT_NAMES
        if capital and start is None:
            start = i
        elif start is not None and (not capital or words[i - 1][-1:] in ",;:."):
            spans.append((start, i))
            start = i if capital else None
    return [(s, e) for s, e in spans if e - s > 1 or not _sentence_start(words, s)]


def _sentence_start(words: list[str], index: int) -> bool:
    return index == 0 or words[index - 1][-1:] in ".!?"


def bare(word: str) -> str:
    """A word without its trailing punctuation."""
    return word.rstrip(".,;:!?")


def replace_span(words: list[str], span: tuple[int, int], new: tuple[str, ...]) -> list[str]:
    """Replace words[start:end] by `new`, keeping the punctuation that closed the span."""
    start, end = span
    closing = words[end - 1][len(bare(words[end - 1])) :]
    replacement = [*new[:-1], bare(new[-1]) + closing]
    return [*words[:start], *replacement, *words[end:]]


def is_number(word: str) -> bool:
    return bool(NUMBER_RE.match(word)) or word.lower() in NUMBER_WORDS


def passage_entities(passage: list[str]) -> list[tuple[str, ...]]:
    """Distinct entity spans of a passage, in order of first appearance."""
    seen: dict[tuple[str, ...], None] = {}
    for start, end in entity_spans(passage):
        seen.setdefault(tuple(bare(w) for w in passage[start:end]), None)
    return list(seen)


def swap_name(answer: list[str], passage: list[str], rng: random.Random) -> list[str] | None:
    """Replace one name of the answer by another name of the same passage."""
    spans = entity_spans(answer)
    candidates = _unrelated_names(answer, spans, passage)
    if not spans or not candidates:
        return None
    return replace_span(answer, rng.choice(spans[1:] or spans), rng.choice(candidates))


def _unrelated_names(
    answer: list[str], spans: list[tuple[int, int]], passage: list[str]
) -> list[tuple[str, ...]]:
    """Names of the passage that neither contain nor are contained in a name of the answer."""
    in_answer = [" ".join(bare(w) for w in answer[s:e]).lower() for s, e in spans]
    return [
        name
        for name in passage_entities(passage)
        if not any(" ".join(name).lower() in n or n in " ".join(name).lower() for n in in_answer)
    ]


def swap_number(answer: list[str], passage: list[str], rng: random.Random) -> list[str] | None:
    """Replace one number of the answer by a different number of the same passage."""
    positions = [i for i, word in enumerate(answer) if is_number(bare(word))]
    used = {bare(answer[i]).lower() for i in positions}
    if not positions:
        return None
    position = rng.choice(positions)
    kind = bare(answer[position])[:1].isdigit()
    others = sorted(
        {bare(w) for w in passage if is_number(bare(w)) and bare(w)[:1].isdigit() == kind} - used
    )
    if not others:
        return None
    return replace_span(answer, (position, position + 1), (rng.choice(others),))


def flip_negation(answer: list[str], passage: list[str], rng: random.Random) -> list[str] | None:
    """Remove the answer's negation if it has one, else insert `not` after an auxiliary."""
    negated = [i for i, word in enumerate(answer) if word.lower() in NEGATIONS]
    if negated:
        position = rng.choice(negated)
        return [*answer[:position], *answer[position + 1 :]]
    auxiliaries = [i for i, word in enumerate(answer) if word.lower() in AUXILIARIES]
    if not auxiliaries:
        return None
    position = auxiliaries[0]
    return [*answer[: position + 1], "not", *answer[position + 1 :]]


def swap_subject(answer: list[str], passage: list[str], rng: random.Random) -> list[str] | None:
    """Attach the claim to the wrong subject: exchange two names of the answer, or replace
    the leading subject by another name of the passage."""
    spans = entity_spans(answer)
    pair = _distant_pair(answer, spans)
    if pair is not None:
        (s1, e1), (s2, e2) = pair
        first = tuple(bare(w) for w in answer[s1:e1])
        second = tuple(bare(w) for w in answer[s2:e2])
        return replace_span(replace_span(answer, (s2, e2), first), (s1, e1), second)
    leading = [span for span in spans if span[0] <= 2]
    candidates = _unrelated_names(answer, spans, passage)
    if not leading or not candidates:
        return None
    return replace_span(answer, leading[0], rng.choice(candidates))


def _distant_pair(
    words: list[str], spans: list[tuple[int, int]]
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The first two different names at least three words apart, so each heads its own phrase."""
    for i, first in enumerate(spans):
        for second in spans[i + 1 :]:
            different = [bare(w) for w in words[first[0] : first[1]]] != [
                bare(w) for w in words[second[0] : second[1]]
            ]
            if different and second[0] - first[1] >= 3:
                return first, second
    return None


PERTURBERS: dict[str, Perturb] = {
    "name_swap": swap_name,
    "number_swap": swap_number,
    "negation": flip_negation,
    "subject_swap": swap_subject,
}


def supporting_sentence(question: Question) -> str:
    """The passage sentence sharing most words with the reference answer, copied verbatim."""
    answer_words = set(question.answer.lower().split())
    sentences = [s for c in question.contexts for s in SENTENCE_RE.split(c) if len(s.split()) > 5]
    return max(sentences, key=lambda s: len(answer_words & set(s.lower().split())), default="")


def rows_for(question: Question, rng: random.Random) -> Iterator[Row]:
    """Pairs of a faithful answer and one perturbation of that very answer.

    The reference answer (often abstractive) and the passage sentence closest to it (verbatim)
    each give a pair, so that how extractive an answer is does not predict its label.
    """
    bases = [text for text in dict.fromkeys([question.answer, supporting_sentence(question)])]
    passage = " ".join(question.contexts).split()
    kinds = rng.sample(PERTURBATIONS, len(PERTURBATIONS))
    for index, base in enumerate(text for text in bases if text.strip()):
        made = _first_perturbation(base, kinds, passage, rng)
        if made is None:
            continue
        kind, perturbed = made
        kinds.remove(kind)
        kinds.append(kind)
        yield _row(question, f"faithful{index}", base, hallucinated=False)
        yield _row(question, kind, perturbed, hallucinated=True)


def _first_perturbation(
    answer: str, kinds: list[str], passage: list[str], rng: random.Random
) -> tuple[str, str] | None:
    """The first kind, in the order given, that changes the answer; with its result."""
    words = answer.split()
    for kind in kinds:
        changed = PERTURBERS[kind](words, passage, rng)
        if changed is not None and changed != words:
            return kind, " ".join(changed)
    return None


def _row(question: Question, kind: str, answer: str, hallucinated: bool) -> Row:
    perturbation = "faithful" if kind.startswith("faithful") else kind
    return Row(
        id=f"{question.id}-{kind}",
        question=question.question,
        contexts=list(question.contexts),
        answer=answer,
        hallucinated=hallucinated,
        perturbation=perturbation,
    )


def build(path: Path, seed: int, n: int | None, split: str = "all") -> list[Row]:
    """The intrinsic set for `n` questions sampled with `seed` (all questions when None)."""
    questions = load_questions(path, split)
    rng = random.Random(seed)
    sample = rng.sample(questions, min(n, len(questions))) if n else questions
    return [row for question in sample for row in rows_for(question, rng)]


def write(rows: list[Row], output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--n", type=int, default=None, help="questions to sample (default all)")
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="half of the questions, by a hash of their id (default all)",
    )
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT, help="clapnq qa.jsonl")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSONL to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = parse_args(argv)
    if not args.input.is_file():
        logger.error(
            "skipped: %s is absent (the shared datasets are not on this machine)", args.input
        )
        return 0
    rows = build(args.input, args.seed, args.n, args.split)
    write(rows, args.output)
    counts = {
        kind: sum(r.perturbation == kind for r in rows) for kind in ("faithful", *PERTURBATIONS)
    }
    logger.info("wrote %d rows to %s: %s", len(rows), args.output, counts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
