"""Prometheus metrics for every DBMigrate service, served on DBMIGRATE_METRICS_ADDR (off when unset).

Services call the small functions below (`event_appended("approved")`, `table_copied(...)`); they
cost a counter increment and work whether or not the endpoint is on.
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable, Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from services.common.config import check_address, env_str
from services.common.errors import ConfigError

log = logging.getLogger(__name__)

_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)

ROWS_COPIED = Counter("dbmigrate_rows_copied", "Rows copied into target databases")
BYTES_COPIED = Counter("dbmigrate_bytes_copied", "Bytes copied into target databases (COPY stream size)")
TABLES_COPIED = Counter("dbmigrate_tables_copied", "Tables (or table parts) copied", ["outcome"])
TABLE_SECONDS = Histogram("dbmigrate_table_copy_seconds", "Time to copy one table or table part",
                          buckets=_DURATION_BUCKETS)
AGENT_CALL_SECONDS = Histogram("dbmigrate_agent_call_seconds", "Latency of the coordinator's calls to the agents",
                               ["agent", "method", "code"], buckets=_CALL_BUCKETS)
EVENTS_APPENDED = Counter("dbmigrate_events_appended", "Workflow events appended to the event log", ["type"])
EVENTS_PUBLISHED = Counter("dbmigrate_events_published", "Workflow events published to NATS JetStream", ["type"])
PUBLISH_LAG_EVENTS = Gauge("dbmigrate_nats_publish_lag_events", "Committed events not yet published to NATS")
PUBLISH_LAG_SECONDS = Gauge("dbmigrate_nats_publish_lag_seconds",
                            "Age of the oldest committed event not yet published to NATS (0 when caught up)")

_PHASES = ("CREATED", "DISCOVERING", "VALIDATING", "PLANNING", "AWAITING_APPROVAL", "EXECUTING", "COMPLETED",
           "DENIED", "FAILED", "CANCELLED", "ROLLED_BACK", "ROLLING_BACK")


class _MigrationsByPhase:
    """Collected at scrape time from the owner's state, so the gauge can never drift from it."""

    def __init__(self, count_by_phase: Callable[[], Mapping[str, int]]):
        self.count_by_phase = count_by_phase

    def collect(self):
        family = GaugeMetricFamily("dbmigrate_migrations", "Migrations by phase", labels=["phase"])
        try:
            counts = dict(self.count_by_phase())
        except Exception:  # noqa: BLE001 - a scrape must never take the service down
            log.warning("could not count migrations by phase for the metrics endpoint", exc_info=True)
            counts = {}
        for phase in sorted(set(_PHASES) | set(counts)):
            family.add_metric([phase], counts.get(phase, 0))
        yield family


_migrations_collector: _MigrationsByPhase | None = None


# ---- what services call ----

def watch_migrations(count_by_phase: Callable[[], Mapping[str, int]]) -> None:
    """Registers the source of `dbmigrate_migrations{phase}`: a function returning {phase name: count}."""
    global _migrations_collector
    if _migrations_collector is not None:
        _migrations_collector.count_by_phase = count_by_phase
        return
    _migrations_collector = _MigrationsByPhase(count_by_phase)
    REGISTRY.register(_migrations_collector)


def event_appended(event_type: str, count: int = 1) -> None:
    EVENTS_APPENDED.labels(event_type).inc(count)


def event_published(event_type: str, count: int = 1) -> None:
    EVENTS_PUBLISHED.labels(event_type).inc(count)


def publish_lag(pending_events: int, oldest_age_seconds: float = 0.0) -> None:
    """How far NATS is behind the event log: events waiting and the age of the oldest one."""
    PUBLISH_LAG_EVENTS.set(max(0, pending_events))
    PUBLISH_LAG_SECONDS.set(max(0.0, oldest_age_seconds) if pending_events > 0 else 0.0)


def rows_copied(rows: int, nbytes: int = 0) -> None:
    """Progress of a copy (call with the increment, not the running total)."""
    if rows > 0:
        ROWS_COPIED.inc(rows)
    if nbytes > 0:
        BYTES_COPIED.inc(nbytes)


def table_copied(seconds: float, rows: int = 0, nbytes: int = 0, *, failed: bool = False,
                 count_rows: bool = True) -> None:
    """One table or part done; `count_rows=False` when its rows were already counted by rows_copied."""
    TABLES_COPIED.labels("failed" if failed else "copied").inc()
    if not failed:
        TABLE_SECONDS.observe(max(0.0, seconds))
        if count_rows:
            rows_copied(rows, nbytes)


def agent_call_finished(agent: str, method: str, seconds: float, code: str = "OK") -> None:
    AGENT_CALL_SECONDS.labels(agent, method, code).observe(max(0.0, seconds))


@contextlib.contextmanager
def agent_call(agent: str, method: str) -> Iterator[None]:
    """Times a call to an agent; the status code of a failed call becomes the `code` label."""
    start = time.perf_counter()
    code = "OK"
    try:
        yield
    except BaseException as err:
        code_fn = getattr(err, "code", None)
        try:
            code = code_fn().name if callable(code_fn) else type(err).__name__
        except Exception:  # noqa: BLE001 - any error still gets timed
            code = type(err).__name__
        raise
    finally:
        agent_call_finished(agent, method, time.perf_counter() - start, code)


# ---- the endpoint ----

_started: dict[str, int] = {}


def metrics_address(service: str) -> str | None:
    """DBMIGRATE_<SERVICE>_METRICS_ADDR, else DBMIGRATE_METRICS_ADDR; None when neither is set."""
    for name in (f"DBMIGRATE_{service.upper()}_METRICS_ADDR", "DBMIGRATE_METRICS_ADDR"):
        value = env_str(name)
        if value:
            return check_address(name, value)
    return None


def start_from_env(service: str) -> int | None:
    """Serves /metrics over HTTP when configured; returns the port (None when off). Idempotent."""
    address = metrics_address(service)
    if address is None:
        return None
    if address in _started:
        return _started[address]
    host, _, port = address.rpartition(":")
    try:
        server, _thread = start_http_server(int(port), addr=host.strip("[]"))
    except OSError as err:
        raise ConfigError(f"cannot serve metrics on {address} (DBMIGRATE_METRICS_ADDR): {err.strerror or err}; "
                          "pick a free port or unset it") from None
    bound = server.server_address[1]
    _started[address] = bound
    log.info("metrics on http://%s:%d/metrics", host, bound)
    return bound
