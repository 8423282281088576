"""Load: 20 migrations at once through one coordinator, 200 WatchEvents streams and 50 live web views
(server-sent events through the web server); event latency and losses."""
from __future__ import annotations

import asyncio
import datetime
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import httpx

from dbmigrate.v1 import coordinator_pb2 as C, coordinator_pb2_grpc
from tests.fixtures.stack import Stack

MIGRATIONS = int(os.environ.get("DBMIGRATE_BENCH_MIGRATIONS", "20"))
WATCHERS = int(os.environ.get("DBMIGRATE_BENCH_WATCHERS", "200"))
WEB_VIEWS = int(os.environ.get("DBMIGRATE_BENCH_WEB_VIEWS", "50"))
NATS_URL = os.environ.get("DBMIGRATE_NATS_URL", "nats://127.0.0.1:4222")
SRC = "postgresql://postgres@127.0.0.1:5432/load_src_{i}"
DST = "postgresql://postgres@127.0.0.1:5432/load_dst_{i}"


async def run(stack: Stack) -> None:
    addr = stack.address("coordinator")
    async with grpc.aio.insecure_channel(addr) as ch:
        stub = coordinator_pb2_grpc.CoordinatorStub(ch)
        ids = []
        for i in range(MIGRATIONS):
            m = await stub.CreateMigration(C.CreateMigrationRequest(
                source_url=SRC.format(i=i), target_url=DST.format(i=i)))
            ids.append(m.id)
        latencies: list[float] = []
        received: list[list[tuple[str, int]]] = [[] for _ in range(WATCHERS)]
        followed = [ids[k % len(ids)] for k in range(WATCHERS)]  # like web views: each follows one migration

        async def watch(k: int) -> None:
            async for ev in stub.WatchEvents(C.WatchEventsRequest(workflow_id=followed[k], from_seq=0, follow=True)):
                latencies.append(time.time() - (ev.time.seconds + ev.time.nanos / 1e9))
                received[k].append((ev.workflow_id, ev.version))

        web_latencies: list[float] = []
        web_received: list[list[tuple[str, int]]] = [[] for _ in range(WEB_VIEWS)]
        web_followed = [ids[k % len(ids)] for k in range(WEB_VIEWS)]
        web = f"http://{stack.address('web')}/api/events"

        async def view(k: int, client: httpx.AsyncClient) -> None:
            """What the page does: one EventSource on /api/events?id=... per open view."""
            async with client.stream("GET", web, params={"id": web_followed[k], "from_seq": 0}) as r:
                kind = None
                async for line in r.aiter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind == "workflow_event":
                        ev = json.loads(line[6:])
                        sent = datetime.datetime.fromisoformat(ev["time"].replace("Z", "+00:00")).timestamp()
                        web_latencies.append(time.time() - sent)
                        web_received[k].append((ev.get("workflow_id", web_followed[k]), ev["version"]))

        client = httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=WEB_VIEWS + 10))
        watchers = [asyncio.ensure_future(watch(k)) for k in range(WATCHERS)]
        watchers += [asyncio.ensure_future(view(k, client)) for k in range(WEB_VIEWS)]
        await asyncio.sleep(1.0)
        latencies.clear()  # from here on only live deliveries count
        web_latencies.clear()
        t0 = time.monotonic()
        for wid in ids:
            await stub.StartMigration(C.MigrationRef(id=wid))
        while True:
            states = [(await stub.GetMigration(C.MigrationRef(id=i))) for i in ids]
            for m in states:
                if m.phase == 5:  # AWAITING_APPROVAL
                    await stub.Approve(C.ApproveRequest(id=m.id))
            if all(m.phase == 7 for m in states):  # COMPLETED
                break
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - t0
        await asyncio.sleep(2.0)
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await client.aclose()
        from coordinator.eventlog import EventLog
        log = EventLog(stack.data_dir / "events.db")
        log_events = [(e.workflow_id, e.version) for e in log.read()]
        log.close()
        missed = sum(1 for k, r in enumerate(received) if r != [e for e in log_events if e[0] == followed[k]])
        lat = sorted(latencies)
        print(f"{MIGRATIONS} migrations completed in {elapsed:.1f}s through one coordinator, "
              f"{len(log_events)} events, {WATCHERS} concurrent WatchEvents streams")
        print(f"append -> watcher latency: p50 {statistics.median(lat) * 1000:.1f} ms, "
              f"p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms over {len(lat)} deliveries")
        print(f"watchers that missed or reordered an event: {missed} of {WATCHERS}")
        web_missed = sum(1 for k, r in enumerate(web_received)
                         if [v for _, v in r] != [e[1] for e in log_events if e[0] == web_followed[k]])
        wl = sorted(web_latencies)
        print(f"{WEB_VIEWS} live web views (SSE): append -> browser latency p50 {statistics.median(wl) * 1000:.1f} ms, "
              f"p99 {wl[int(len(wl) * 0.99)] * 1000:.1f} ms over {len(wl)} deliveries; "
              f"views that missed or reordered an event: {web_missed} of {WEB_VIEWS}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), NATS_URL)
        stack.start_doubles(DOUBLE_UNITS="10", DOUBLE_UNIT_SECONDS="0.02").start("coordinator", "web")
        try:
            asyncio.run(run(stack))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
