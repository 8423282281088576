"""Shared steps for the coordinator's end-to-end tests."""
from __future__ import annotations

import asyncio
import time

import grpc
import nats

from coordinator.eventlog import EventLog
from dbmigrate.v1 import coordinator_pb2 as C, events_pb2 as E

SRC = "postgresql://postgres:s3cret-src-pw@127.0.0.1:5432/source_db"
DST = "postgresql://postgres:s3cret-dst-pw@127.0.0.1:5432/target_db"


def wait_phase(stub, wid: str, *phases: str, timeout: float = 60.0) -> C.Migration:
    deadline = time.monotonic() + timeout
    m = None
    while time.monotonic() < deadline:
        try:
            m = stub.GetMigration(C.MigrationRef(id=wid), timeout=5)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            time.sleep(0.2)
            continue
        if E.Phase.Name(m.phase) in phases:
            return m
        time.sleep(0.1)
    raise AssertionError(f"migration {wid} not in {phases} after {timeout}s: "
                         f"{E.Phase.Name(m.phase) if m else 'unreachable'} {m.error if m else ''}")


def logged_events(stack, wid: str | None = None) -> list[E.WorkflowEvent]:
    log = EventLog(stack.data_dir / "events.db")
    try:
        return [e for e in log.read() if wid is None or e.workflow_id == wid]
    finally:
        log.close()


def assert_no_gaps_no_duplicates(events: list[E.WorkflowEvent]) -> None:
    by_wf: dict[str, list[int]] = {}
    for e in events:
        by_wf.setdefault(e.workflow_id, []).append(e.version)
    for wid, versions in by_wf.items():
        assert versions == list(range(1, len(versions) + 1)), f"{wid}: versions {versions}"


async def stream_messages(url: str, stream: str, expected: int, timeout: float = 20.0,
                          workflow_id: str = "*") -> list[tuple[str, int]]:
    """(workflow_id, version) of every message on the stream (of one workflow), in stream order."""
    nc = await nats.connect(url, max_reconnect_attempts=1)
    try:
        js = nc.jetstream(timeout=5)
        sub = await js.pull_subscribe(f"dbmigrate.events.{workflow_id}.>", stream=stream)
        out: list[tuple[str, int]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msgs = await sub.fetch(batch=500, timeout=1)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                # nats-py raises the plain asyncio one when its deadline ran out between its two requests
                if len(out) >= expected:
                    break
                continue
            for m in msgs:
                ev = E.WorkflowEvent()
                ev.ParseFromString(m.data)
                out.append((ev.workflow_id, ev.version))
                await m.ack()
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()
