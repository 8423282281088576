"""The Prometheus endpoint: a real coordinator's /metrics after a migration, and the copy metrics."""
from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from services.common import metrics
from services.common.errors import ConfigError
from tests.cli.helpers import dbmigrate
from tests.fixtures.nats import free_port

SRC = "postgresql://postgres:metrics-pw-1@127.0.0.1:5432/source_db"
DST = "postgresql://postgres:metrics-pw-2@127.0.0.1:5432/target_db"


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "metrics-pw" not in text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_coordinator_metrics_after_a_migration(stack_factory):
    port = free_port()
    stack = stack_factory({"DOUBLE_UNITS": "3", "DOUBLE_UNIT_SECONDS": "0.01",
                           "DBMIGRATE_COORDINATOR_METRICS_ADDR": f"127.0.0.1:{port}"})
    stack.start_doubles()
    stack.start("coordinator")
    addr = stack.address("coordinator")
    assert dbmigrate("migrate", "--source", SRC, "--target", DST, "--approve", coordinator=addr).code == 0
    wid = dbmigrate("create", "--source", SRC, "--target", DST, coordinator=addr).out.strip()
    assert wid

    deadline = time.monotonic() + 20
    while True:  # publishing to NATS runs after the commit, in the background
        m = scrape(port)
        if m.get(("dbmigrate_nats_publish_lag_events", ())) == 0 and \
                m.get(("dbmigrate_events_published_total", (("type", "migration_created"),))) == 2:
            break
        assert time.monotonic() < deadline, "the published events never caught up with the log"
        time.sleep(0.2)
    assert m[("dbmigrate_migrations", (("phase", "COMPLETED"),))] == 1
    assert m[("dbmigrate_migrations", (("phase", "CREATED"),))] == 1
    assert m[("dbmigrate_migrations", (("phase", "FAILED"),))] == 0
    assert m[("dbmigrate_events_appended_total", (("type", "migration_created"),))] == 2
    assert m[("dbmigrate_events_appended_total", (("type", "table_copied"),))] == 3
    assert m[("dbmigrate_events_published_total", (("type", "migration_completed"),))] == 1
    assert m[("dbmigrate_nats_publish_lag_seconds", ())] == 0
    for agent, method in (("discovery", "discover"), ("validation", "validate"), ("generation", "generate"),
                          ("execution", "prepare"), ("execution", "execute"), ("validation", "verify")):
        key = ("dbmigrate_agent_call_seconds_count", (("agent", agent), ("code", "OK"), ("method", method)))
        assert m[key] == 1, key


def test_copy_metrics_count_rows_bytes_and_table_durations():
    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    rows, nbytes = value("dbmigrate_rows_copied_total"), value("dbmigrate_bytes_copied_total")
    tables = value("dbmigrate_table_copy_seconds_count")
    metrics.rows_copied(1000, 64_000)
    metrics.table_copied(2.5, rows=500, nbytes=1000)
    metrics.table_copied(1.0, rows=1000, count_rows=False)
    metrics.table_copied(0.1, failed=True)
    assert value("dbmigrate_rows_copied_total") - rows == 1500
    assert value("dbmigrate_bytes_copied_total") - nbytes == 65_000
    assert value("dbmigrate_table_copy_seconds_count") - tables == 2
    assert value("dbmigrate_tables_copied_total", outcome="failed") >= 1


def test_metrics_address_errors_name_the_variable(monkeypatch):
    monkeypatch.setenv("DBMIGRATE_METRICS_ADDR", "nonsense")
    with pytest.raises(ConfigError, match="DBMIGRATE_METRICS_ADDR"):
        metrics.start_from_env("discovery")
    monkeypatch.delenv("DBMIGRATE_METRICS_ADDR")
    assert metrics.start_from_env("discovery") is None
