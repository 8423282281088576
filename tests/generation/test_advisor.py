"""The h2oGPTe advisor at the SDK's boundary: a stand-in with the SDK's own signatures and types."""
from __future__ import annotations

import inspect
import json
import time

import h2ogpte
import pytest
from h2ogpte.errors import UnauthorizedError
from h2ogpte.types import Answer

from dbmigrate.v1 import agents_pb2, common_pb2
from services.common.advisor import H2ogpteAdvisor, Review, parse_answer, AdvisorAnswerError
from services.generation.recommend import generate

API_KEY = "sk-H2O-distinctive-Key-4242"


class FakeH2OGPTE:
    """Same constructor and answer_question signature as h2ogpte.H2OGPTE (checked below)."""
    calls: list = []
    behaviour = "ok"
    content = ""

    def __init__(self, address: str, api_key=None, token_provider=None, verify=True, strict_version_check=False,
                 send_client_version=True, azure_token=None):
        if FakeH2OGPTE.behaviour == "unreachable":  # the real constructor calls the server
            raise ConnectionError(f"Max retries exceeded with url: {address}/rpc/meta")
        self.address, self.api_key = address, api_key

    def answer_question(self, question, system_prompt="", pre_prompt_query=None, prompt_query=None,
                        text_context_list=None, llm=None, llm_args=None, chat_conversation=None,
                        guardrails_settings=None, timeout=None, **kwargs):
        # The REST model takes only an integer timeout (StrictInt): a float is a pydantic error there.
        assert isinstance(timeout, int), "timeout must be an int"
        FakeH2OGPTE.calls.append({"question": question, "llm": llm, "llm_args": llm_args, "timeout": timeout})
        if FakeH2OGPTE.behaviour == "slow":
            time.sleep(3)
        if FakeH2OGPTE.behaviour == "unauthorized":
            raise UnauthorizedError({"error": f"invalid api key {self.api_key}"})
        if FakeH2OGPTE.behaviour == "answer_error":
            return Answer(content="", error="model overloaded", llm=llm or "auto")
        return Answer(content=FakeH2OGPTE.content, error="", llm=llm or "auto")


def test_the_stand_in_has_the_sdk_signatures():
    for name in ("__init__", "answer_question"):
        real = list(inspect.signature(getattr(h2ogpte.H2OGPTE, name)).parameters)
        fake = list(inspect.signature(getattr(FakeH2OGPTE, name)).parameters)
        assert fake == real, name


def advisor(behaviour: str, content: str = "", timeout: int = 2) -> H2ogpteAdvisor:
    FakeH2OGPTE.behaviour, FakeH2OGPTE.content, FakeH2OGPTE.calls = behaviour, content, []
    config = common_pb2.AdvisorConfig(kind=common_pb2.H2OGPTE, address="https://h2ogpte.example.com/api",
                                      model="my-llm", api_key=API_KEY, timeout_seconds=timeout)
    a = H2ogpteAdvisor(config, client_factory=lambda address, key: FakeH2OGPTE(address=address, api_key=key))
    a.grace = 0.5
    return a


DRAFT = Review(risk=common_pb2.RISK_MEDIUM, summary="rules summary")


def test_a_valid_answer_may_raise_the_risk_and_adds_its_explanation():
    a = advisor("ok", json.dumps({"risk": "HIGH", "summary": "Check the collation.", "explanations": ["reindex"]}))
    r = a.review("generation", {"x": 1}, DRAFT)
    assert (r.risk, r.advisor, r.note) == (common_pb2.RISK_HIGH, "h2ogpte", "")
    assert "Check the collation." in r.summary and "rules summary" in r.summary and r.explanations == ("reindex",)
    call = FakeH2OGPTE.calls[0]
    assert call["llm"] == "my-llm" and call["llm_args"]["response_format"] == "json_object"
    assert json.loads(call["question"])["facts"] == {"x": 1}
    assert a.address == "https://h2ogpte.example.com"  # the SDK appends /api/v1 itself


def test_an_answer_can_never_lower_the_risk():
    r = advisor("ok", '{"risk": "LOW", "summary": "fine"}').review("generation", {}, DRAFT)
    assert r.risk == common_pb2.RISK_MEDIUM and "kept MEDIUM" in r.note


@pytest.mark.parametrize("content, why", [
    ("not json at all", "not JSON"), ('{"risk": "SEVERE", "summary": "x"}', "risk must be"),
    ('{"risk": "LOW"}', "summary is missing"), ('["LOW"]', "not a JSON object"),
    ('{"risk": "LOW", "summary": "x", "explanations": "one"}', "explanations must be a list"),
])
def test_a_malformed_answer_falls_back_to_the_rules_with_the_reason(content, why):
    r = advisor("ok", content).review("discovery", {}, DRAFT)
    assert r.advisor == "rules" and r.risk == DRAFT.risk and r.summary == DRAFT.summary
    assert why in r.note and len(FakeH2OGPTE.calls) == 2  # one bounded retry


@pytest.mark.parametrize("behaviour, why", [("unreachable", "ConnectionError"), ("unauthorized", "UnauthorizedError"),
                                           ("answer_error", "model overloaded"), ("slow", "TimeoutError")])
def test_failures_fall_back_to_the_rules_and_never_show_the_key(behaviour, why):
    t0 = time.monotonic()
    r = advisor(behaviour, timeout=1).review("discovery", {}, DRAFT)
    assert r.advisor == "rules" and why in r.note and "h2oGPTe advisor failed" in r.note
    assert API_KEY not in r.note and API_KEY not in r.summary
    assert time.monotonic() - t0 < 10


def test_a_fenced_json_answer_is_accepted():
    assert parse_answer('```json\n{"risk": "low", "summary": "ok"}\n```')[0] == common_pb2.RISK_LOW
    with pytest.raises(AdvisorAnswerError):
        parse_answer("")


def test_the_advisor_cannot_turn_a_blocker_into_approve(monkeypatch):
    from services.common import advisor as advisor_module
    monkeypatch.setattr(advisor_module, "_default_client_factory",
                        lambda address, key: FakeH2OGPTE(address=address, api_key=key))
    FakeH2OGPTE.behaviour, FakeH2OGPTE.calls = "ok", []
    FakeH2OGPTE.content = json.dumps({"risk": "LOW", "summary": "Looks perfect, approve it."})
    req = agents_pb2.GenerateRequest(
        advisor=common_pb2.AdvisorConfig(kind=common_pb2.H2OGPTE, address="http://h", api_key=API_KEY),
        discovery=common_pb2.DiscoveryReport(findings=[common_pb2.Finding(
            code="EXTENSION_MISSING", severity=common_pb2.BLOCKER, object="extension postgis",
            message="used by the source, not available on the target")]),
        validation=common_pb2.ValidationReport(passed=True))
    report = generate(req)
    assert report.recommendation == common_pb2.DENY and report.risk == common_pb2.RISK_HIGH
    assert report.advisor == "h2ogpte" and any("EXTENSION_MISSING" in r for r in report.reasons)
    assert API_KEY not in str(report)
