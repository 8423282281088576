"""python -m coordinator: replays the event log, resumes running workflows, serves the Coordinator API."""
from __future__ import annotations

import collections
import logging
import time
from pathlib import Path

from coordinator.eventlog import EventLog
from coordinator.publisher import Publisher
from coordinator.secrets import SecretStore
from coordinator.service import CoordinatorServicer
from coordinator.workflow import AgentStubs, Engine
from dbmigrate.v1 import coordinator_pb2, coordinator_pb2_grpc, events_pb2
from services.common import metrics
from services.common.config import env_float, env_str, service_address
from services.common.server import Service, main

log = logging.getLogger("coordinator")


async def build():
    data = Path(env_str("DBMIGRATE_DATA_DIR", "var"))
    eventlog = EventLog(env_str("DBMIGRATE_EVENT_LOG", str(data / "events.db")))
    secrets = SecretStore(data / "secrets.json")
    agents = AgentStubs({name: service_address(name) for name in ("discovery", "validation", "generation", "execution")})
    engine = Engine(eventlog, secrets, agents,
                    transport_retry_seconds=env_float("DBMIGRATE_AGENT_RETRY_SECONDS", 180.0, minimum=0),
                    database_retry_seconds=env_float("DBMIGRATE_DATABASE_RETRY_SECONDS", 180.0, minimum=0))
    t0 = time.perf_counter()
    count = engine.load()
    log.info("replayed %d events into %d workflows in %.3fs", count, len(engine.states), time.perf_counter() - t0)
    publisher = Publisher(eventlog, env_str("DBMIGRATE_NATS_URL", "nats://127.0.0.1:4222"),
                          env_str("DBMIGRATE_NATS_STREAM", "DBMIGRATE_EVENTS"))
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
    return [Service(coordinator_pb2_grpc.add_CoordinatorServicer_to_server, CoordinatorServicer(engine), name)], cleanup


if __name__ == "__main__":
    main("coordinator", build)
