"""python -m coordinator: replays the event log, resumes running workflows, serves the Coordinator API."""
from __future__ import annotations

import collections
import logging
import time
from pathlib import Path

from coordinator.eventlog import EventLog
from coordinator.publisher import Publisher
from coordinator.secrets import SecretStore
from coordinator.service import CoordinatorServicer, add_to_server
from coordinator.workflow import AgentStubs, Engine
from dbmigrate.v1 import coordinator_pb2, events_pb2
from services.common import metrics
from services.common.config import service_address, settings
from services.common.server import Service, main

log = logging.getLogger("coordinator")


async def build():
    cfg = settings()
    data = Path(cfg.data_dir)
    eventlog = EventLog(cfg.event_log)
    secrets = SecretStore(data / "secrets.json")
    agents = AgentStubs({name: service_address(name) for name in ("discovery", "validation", "generation", "execution")})
    engine = Engine(eventlog, secrets, agents,
                    transport_retry_seconds=cfg.agent_retry_seconds, database_retry_seconds=cfg.database_retry_seconds)
    t0 = time.perf_counter()
    count = engine.load()
    log.info("replayed %d events into %d workflows in %.3fs", count, len(engine.states), time.perf_counter() - t0)
    publisher = Publisher(eventlog, cfg.nats_url, cfg.nats_stream)
    engine.listeners.append(publisher.notify)
    metrics.watch_migrations(lambda: collections.Counter(
        events_pb2.Phase.Name(w.phase) for w in list(engine.states.values())))
    publisher.start()
    resumed = engine.resume_all()
    if resumed:
        log.info("resumed %d running workflows: %s", len(resumed), ", ".join(resumed))

    async def cleanup():
        await engine.stop()
        await publisher.stop()
        await agents.close()
        eventlog.close()

    name = coordinator_pb2.DESCRIPTOR.services_by_name["Coordinator"].full_name
    return [Service(add_to_server, CoordinatorServicer(engine), name)], cleanup


if __name__ == "__main__":
    main("coordinator", build)
