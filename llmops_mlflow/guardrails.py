"""Guardrails for a served model: prompt injection, PII redaction and a groundedness floor."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmops_mlflow.errors import ConfigError

NOT_FOUND_REPLY = "I could not find this in the documents."
BLOCKED_REPLY = "I can't help with that request."

_WORDS = r"[^.\n]{0,40}?"
INJECTION_PATTERNS: dict[str, str] = {
    "ignore_previous_instructions": (
        rf"\b(?:ignore|forget|override|skip)\b{_WORDS}\b(?:previous|prior|earlier|above|"
        rf"preceding|all)\b{_WORDS}\b(?:instructions?|prompts?|rules|directions|guidelines)\b"
    ),
    "disregard_above": r"\bdisregard\b[^\n]{0,60}?\b(?:above|previous|prior|earlier)\b",
    "you_are_now": r"\byou are now\b",
    "system_prompt": r"\bsystem\s+prompt\b",
    "reveal_instructions": (
        rf"\b(?:reveal|show|print|repeat|output|leak|tell me)\b{_WORDS}\b(?:your|the)\b"
        r"[^.\n]{0,20}?\b(?:instructions|prompt|rules|guidelines)\b"
    ),
    "role_play_jailbreak": (
        r"\b(?:DAN|do anything now|developer mode|jailbreak(?:en)?|pretend (?:to be|you are)|"
        r"act as (?:an? )?(?:unfiltered|unrestricted|uncensored|evil)|"
        r"without (?:any )?(?:restrictions|filters|rules))\b"
    ),
}


class GuardrailsConfig(BaseModel):
    """What the served model checks on the way in and on the way out.

    Example (the `guardrails:` section given to `register_champion`):
        max_input_chars: 2000
        extra_injection_patterns: ["\\\\bsudo mode\\\\b"]
        groundedness_floor: 0.5
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_input_chars: int = Field(4000, gt=0, description="longer questions are rejected")
    injection_patterns: bool = Field(True, description="block known prompt-injection phrases")
    extra_injection_patterns: tuple[str, ...] = Field(
        (), description="more regular expressions (case-insensitive) that block a question"
    )
    redact_pii_input: bool = Field(True, description="mask PII in the question before the model")
    redact_pii_output: bool = Field(True, description="mask PII in the answer")
    groundedness_floor: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="minimum groundedness (1 - hallucination score); below it, or when the "
        "score is unknown, the answer is replaced by a could-not-find reply",
    )

    @field_validator("extra_injection_patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"invalid regular expression {pattern!r}: {err}") from err
        return patterns


def load_guardrails(path: str | Path | None) -> GuardrailsConfig:
    """Read a guardrails YAML file; no file means the defaults."""
    if path is None or not Path(path).is_file():
        return GuardrailsConfig()
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return parse_guardrails(data, str(path))


def parse_guardrails(data: object, source: str = "guardrails") -> GuardrailsConfig:
    """Validate a guardrails mapping; a typo names the key and the source."""
    if isinstance(data, GuardrailsConfig):
        return data
    if isinstance(data, Mapping):
        data = dict(data)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
    try:
        return GuardrailsConfig.model_validate(data)
    except ValidationError as err:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"{source}: invalid guardrails: {details}") from err


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check: allowed or not, the (redacted) text, and each reason."""

    allowed: bool
    text: str
    reasons: tuple[str, ...] = ()

    @property
    def rules(self) -> tuple[str, ...]:
        """The rule behind each reason (the part before the colon), for metric labels."""
        return tuple(reason.split(":", 1)[0] for reason in self.reasons)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum that every payment card number satisfies."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (spaces allowed)."""
    compact = text.replace(" ", "").upper()
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _digit_count_between(low: int, high: int) -> Callable[[str], bool]:
    return lambda text: low <= sum(c.isdigit() for c in text) <= high


def _card(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


@dataclass(frozen=True)
class _Pii:
    kind: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None = None

    def redact(self, text: str) -> tuple[str, int]:
        found = 0

        def replace(match: re.Match[str]) -> str:
            nonlocal found
            if self.check is not None and not self.check(match.group(0)):
                return match.group(0)
            found += 1
            return f"[REDACTED_{self.kind.upper()}]"

        return self.pattern.sub(replace, text), found


# Order matters: the long digit runs (IBAN, card) go before the phone pattern could eat them.
PII_RULES: tuple[_Pii, ...] = (
    _Pii("email", re.compile(r"\b[\w.%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    _Pii("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), iban_valid),
    _Pii("credit_card", re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)"), _card),
    _Pii("ssn", re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")),
    _Pii(
        "phone",
        re.compile(
            r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?"
            r"\d{2,4}(?:[ .-]\d{2,4}){1,4}(?!\w)"
        ),
        _digit_count_between(9, 15),
    ),
)


def redact_pii(text: str) -> tuple[str, tuple[str, ...]]:
    """Mask emails, IBANs, card numbers (Luhn-checked), US SSNs and phone numbers."""
    reasons = []
    for rule in PII_RULES:
        text, found = rule.redact(text)
        if found:
            reasons.append(f"pii: {found} {rule.kind} redacted")
    return text, tuple(reasons)


class Guardrails:
    """Compiled checks for one `GuardrailsConfig`."""

    def __init__(self, config: GuardrailsConfig | None = None) -> None:
        self.config = config or GuardrailsConfig()
        builtin = INJECTION_PATTERNS if self.config.injection_patterns else {}
        extra = {f"custom_{i}": p for i, p in enumerate(self.config.extra_injection_patterns)}
        self._injection = {
            name: re.compile(pattern, re.IGNORECASE)
            for name, pattern in {**builtin, **extra}.items()
        }

    def check_input(self, text: str) -> Verdict:
        """Block over-long or injection-like questions; redact PII in the ones let through."""
        if len(text) > self.config.max_input_chars:
            reason = f"max_input_chars: {len(text)} characters, limit {self.config.max_input_chars}"
            return Verdict(False, text, (reason,))
        hits = [name for name, pattern in self._injection.items() if pattern.search(text)]
        if hits:
            return Verdict(False, text, tuple(f"injection: matched {name}" for name in hits))
        if not self.config.redact_pii_input:
            return Verdict(True, text)
        redacted, reasons = redact_pii(text)
        return Verdict(True, redacted, reasons)

    def check_output(
        self, answer: str, contexts: Sequence[str], hallucination_score: float | None
    ) -> Verdict:
        """Replace an answer below the groundedness floor; redact PII in the rest."""
        floor = self.config.groundedness_floor
        if floor is not None and (hallucination_score is None or hallucination_score > 1.0 - floor):
            shown = "unknown" if hallucination_score is None else f"{hallucination_score:.2f}"
            reason = (
                f"groundedness: hallucination score {shown} with {len(contexts)} context(s) "
                f"is above {1.0 - floor:.2f} (floor {floor:.2f})"
            )
            return Verdict(False, NOT_FOUND_REPLY, (reason,))
        if not self.config.redact_pii_output:
            return Verdict(True, answer)
        redacted, reasons = redact_pii(answer)
        return Verdict(True, redacted, reasons)


def check_input(text: str, config: GuardrailsConfig | None = None) -> Verdict:
    """`Guardrails(config).check_input(text)`; see there."""
    return Guardrails(config).check_input(text)


def check_output(
    answer: str,
    contexts: Sequence[str],
    hallucination_score: float | None,
    config: GuardrailsConfig | None = None,
) -> Verdict:
    """`Guardrails(config).check_output(...)`; see there."""
    return Guardrails(config).check_output(answer, contexts, hallucination_score)
