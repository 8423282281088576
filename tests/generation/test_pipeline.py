"""Discovery, validation and generation on real databases, the way the coordinator chains them."""
from __future__ import annotations

from dbmigrate.v1 import agents_pb2, common_pb2
from services.discovery.discover import discover
from services.discovery.summary import summarize
from services.generation.recommend import generate
from services.validation.sample import validate

CLEAN = """
CREATE TABLE public.customers (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.orders (id bigint PRIMARY KEY, customer bigint NOT NULL REFERENCES public.customers (id),
                            total numeric(10, 2));
INSERT INTO public.customers SELECT g, 'c' || g FROM generate_series(1, 2000) g;
INSERT INTO public.orders SELECT g, 1 + g % 2000, g / 10.0 FROM generate_series(1, 10000) g;
ANALYZE;
"""


def chain(src, dst, **options) -> tuple[common_pb2.DiscoveryReport, common_pb2.GenerationReport]:
    opts = common_pb2.MigrationOptions(jobs=2, **options)
    d = discover(agents_pb2.DiscoverRequest(workflow_id="wf-chain", source=src.conn, target=dst.conn, options=opts))
    summarize(d, common_pb2.AdvisorConfig())
    v = validate(agents_pb2.ValidateRequest(workflow_id="wf-chain", source=src.conn, target=dst.conn, options=opts,
                                            discovery=d))
    g = generate(agents_pb2.GenerateRequest(workflow_id="wf-chain", options=opts, discovery=d, validation=v))
    return d, g


def test_a_clean_pair_gets_low_risk_and_approve(new_database):
    src, dst = new_database("gsrc"), new_database("gdst")
    src.execute(CLEAN)
    d, g = chain(src, dst)
    assert d.advisor == "rules" and "Nothing blocks the migration" in d.summary
    assert (g.risk, g.recommendation) == (common_pb2.RISK_LOW, common_pb2.APPROVE), (g.reasons, d.summary)
    assert [t.name for t in g.plan.tables] == ["orders", "customers"] and g.plan.estimated_seconds > 0


def test_a_non_empty_target_gets_deny_with_the_finding_named(new_database):
    src, dst = new_database("gsrc"), new_database("gdst")
    src.execute(CLEAN)
    dst.execute("CREATE TABLE public.orders (id bigint PRIMARY KEY); INSERT INTO public.orders VALUES (1)")
    d, g = chain(src, dst)
    assert g.recommendation == common_pb2.DENY and g.risk == common_pb2.RISK_HIGH
    assert any("TARGET_NOT_EMPTY" in r and "orders" in r for r in g.reasons), g.reasons
    assert "cannot run until" in d.summary
