"""The advisor: one small interface, two implementations (embedded `rules`, and h2oGPTe).

Discovery and generation ask it to review a draft: the facts (JSON), the findings and the risk the
rules derived. `RulesAdvisor` returns the draft with a readable summary; `H2ogpteAdvisor` asks an
h2oGPTe server for a JSON answer of a fixed shape, validates it, and merges it into the draft: it
may raise the risk and add explanation, never lower the risk, drop a finding or remove a BLOCKER.
On any failure (unreachable, slow, malformed answer) it falls back to `rules` and records why.
"""
from __future__ import annotations

import concurrent.futures
import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Protocol

from dbmigrate.v1 import common_pb2
from services.common.logs import redact, register_secret

log = logging.getLogger(__name__)

RISK_NAMES = {common_pb2.RISK_LOW: "LOW", common_pb2.RISK_MEDIUM: "MEDIUM", common_pb2.RISK_HIGH: "HIGH"}
RISK_VALUES = {v: k for k, v in RISK_NAMES.items()}
DEFAULT_TIMEOUT = 60
ATTEMPTS = 2

# The JSON shape the h2oGPTe advisor must answer in (sent as guided_json; validated here either way).
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "risk": {"type": "string", "enum": ["LOW", "MEDIUM", "HIGH"]},
        "summary": {"type": "string"},
        "explanations": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["risk", "summary"],
}

SYSTEM_PROMPT = (
    "You are a senior PostgreSQL database administrator reviewing a planned migration of a whole database "
    "to another server. You receive the facts and the findings of an automatic assessment as JSON. Answer "
    "ONLY with a JSON object: {\"risk\": \"LOW\"|\"MEDIUM\"|\"HIGH\", \"summary\": \"<at most 8 sentences for "
    "the operator>\", \"explanations\": [\"<one sentence per concern, most important first>\"]}. Do not "
    "repeat the facts; say what could go wrong and what to check.")


@dataclass(frozen=True)
class Review:
    """What an advisor answers about one phase."""
    risk: int                      # common_pb2.Risk
    summary: str
    explanations: tuple[str, ...] = ()
    advisor: str = "rules"
    note: str = ""                 # e.g. why h2oGPTe was not used


class Advisor(Protocol):
    name: str

    def review(self, topic: str, facts: dict[str, Any], draft: Review) -> Review:
        """The draft (from the rules) reviewed: same or higher risk, summary, explanations."""


class RulesAdvisor:
    """Embedded, offline, deterministic: the draft the rules wrote is the answer."""
    name = "rules"

    def review(self, topic: str, facts: dict[str, Any], draft: Review) -> Review:
        return replace(draft, advisor=self.name)


class AdvisorAnswerError(ValueError):
    """The advisor answered something that is not the JSON shape asked for."""


def parse_answer(content: str) -> tuple[int, str, tuple[str, ...]]:
    """Validates an h2oGPTe answer: a JSON object with risk, summary and optional explanations."""
    text = (content or "").strip()
    if text.startswith("```"):  # some models wrap JSON in a code fence
        text = text.strip("`")
        text = text[text.find("{"):] if "{" in text else text
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise AdvisorAnswerError(f"the answer is not JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise AdvisorAnswerError("the answer is not a JSON object")
    risk = data.get("risk")
    if not isinstance(risk, str) or risk.upper() not in RISK_VALUES:
        raise AdvisorAnswerError(f"risk must be LOW, MEDIUM or HIGH, got {str(risk)[:40]!r}")
    summary = data.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise AdvisorAnswerError("summary is missing or empty")
    explanations = data.get("explanations", [])
    if not isinstance(explanations, list) or not all(isinstance(e, str) for e in explanations):
        raise AdvisorAnswerError("explanations must be a list of strings")
    return RISK_VALUES[risk.upper()], summary.strip()[:4000], tuple(e.strip()[:1000] for e in explanations[:20])


def _default_client_factory(address: str, api_key: str):
    from h2ogpte import H2OGPTE  # imported late: the SDK is heavy and only this adapter needs it
    return H2OGPTE(address=address, api_key=api_key)


class H2ogpteAdvisor:
    """h2oGPTe through its SDK (sync client, run in a worker thread with a hard time limit)."""
    name = "h2ogpte"
    grace = 5.0  # seconds allowed beyond the server-side timeout before giving up here

    def __init__(self, config: common_pb2.AdvisorConfig,
                 client_factory: Callable[[str, str], Any] | None = None):
        self.address = config.address.rstrip("/ ")
        if self.address.endswith("/api"):  # the SDK appends /api/v1 itself
            self.address = self.address[: -len("/api")]
        self.model = config.model or "auto"
        self.api_key = config.api_key
        register_secret(self.api_key)
        self.timeout = int(config.timeout_seconds or DEFAULT_TIMEOUT)
        self.client_factory = client_factory
        self.fallback = RulesAdvisor()

    def _ask(self, question: str) -> str:
        client = (self.client_factory or _default_client_factory)(self.address, self.api_key)
        answer = client.answer_question(
            question=question, system_prompt=SYSTEM_PROMPT, llm=self.model, timeout=self.timeout,
            llm_args={"temperature": 0, "max_new_tokens": 1024, "response_format": "json_object",
                      "guided_json": ANSWER_SCHEMA})
        error = getattr(answer, "error", "")
        if error:
            raise RuntimeError(f"the server answered with an error: {error}")
        return getattr(answer, "content", "")

    def _ask_with_deadline(self, question: str) -> str:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="h2ogpte")
        try:
            # The SDK's own timeout is sent to the server; this one bounds the whole call here.
            return pool.submit(self._ask, question).result(timeout=self.timeout + self.grace)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"no answer within {self.timeout + self.grace:.0f} s") from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def review(self, topic: str, facts: dict[str, Any], draft: Review) -> Review:
        if not self.address or not self.api_key:
            missing = "address" if not self.address else "API key"
            return replace(self.fallback.review(topic, facts, draft),
                           note=f"h2oGPTe advisor not used: no {missing} given; the rules answered")
        question = json.dumps({"topic": topic, "facts": facts,
                               "assessment": {"risk": RISK_NAMES.get(draft.risk, "LOW"), "summary": draft.summary}},
                              default=str)[:60000]
        reasons = []
        for attempt in range(1, ATTEMPTS + 1):
            t0 = time.monotonic()
            try:
                risk, summary, explanations = parse_answer(self._ask_with_deadline(question))
            except Exception as err:  # the SDK raises many kinds; each one means: fall back
                reason = redact(f"{type(err).__name__}: {err}")[:300]
                if self.api_key:
                    reason = reason.replace(self.api_key, "***")
                reasons.append(f"attempt {attempt}: {reason}")
                log.warning("h2oGPTe advisor attempt %d failed after %.1fs: %s", attempt, time.monotonic() - t0, reason)
                continue
            merged_risk = max(draft.risk, risk)  # may raise, never lower
            note = "" if risk >= draft.risk else (
                f"h2oGPTe suggested risk {RISK_NAMES[risk]}; kept {RISK_NAMES[draft.risk]} from the rules "
                "(an advisor may raise a risk, never lower it)")
            return Review(risk=merged_risk, summary=f"{summary}\n\n{draft.summary}",
                          explanations=explanations + draft.explanations, advisor=self.name, note=note)
        return replace(self.fallback.review(topic, facts, draft),
                       note="h2oGPTe advisor failed, the rules answered: " + "; ".join(reasons))


def advisor_for(config: common_pb2.AdvisorConfig | None) -> Advisor:
    if config is not None and config.kind == common_pb2.H2OGPTE:
        return H2ogpteAdvisor(config)
    return RulesAdvisor()


def risk_from_findings(findings) -> int:
    """Rules: a BLOCKER or HIGH finding makes the risk HIGH, a MEDIUM one MEDIUM, else LOW."""
    worst = max((f.severity for f in findings), default=common_pb2.INFO)
    if worst >= common_pb2.HIGH:
        return common_pb2.RISK_HIGH
    if worst == common_pb2.MEDIUM:
        return common_pb2.RISK_MEDIUM
    return common_pb2.RISK_LOW


SEVERITY_ORDER = [common_pb2.BLOCKER, common_pb2.HIGH, common_pb2.MEDIUM, common_pb2.LOW, common_pb2.INFO]


def findings_digest(findings, limit: int = 8) -> list[str]:
    """Most severe first, one line each, for a summary a person reads in a minute."""
    ordered = sorted(findings, key=lambda f: SEVERITY_ORDER.index(f.severity) if f.severity in SEVERITY_ORDER else 9)
    lines = [f"[{common_pb2.Severity.Name(f.severity)}] {f.object + ': ' if f.object else ''}{f.message}"
             + (f" -> {f.remedy}" if f.remedy and f.severity >= common_pb2.MEDIUM else "") for f in ordered[:limit]]
    if len(ordered) > limit:
        lines.append(f"... and {len(ordered) - limit} more findings (see the full list)")
    return lines


def count_by_severity(findings) -> str:
    counts = {}
    for f in findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    parts = [f"{counts[s]} {common_pb2.Severity.Name(s)}" for s in SEVERITY_ORDER if counts.get(s)]
    return ", ".join(parts) if parts else "no findings"
