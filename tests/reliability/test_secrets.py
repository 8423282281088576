"""A migration with distinctive passwords and API key leaves no trace of them anywhere a person or a
process can read: event log, NATS stream, service logs, reports, gRPC answers, web answers, errors."""
from __future__ import annotations

import asyncio
import time

import httpx
import nats
import psycopg

from dbmigrate.v1 import common_pb2, coordinator_pb2 as C, events_pb2 as E
from tests.fixtures.pg import PrivatePostgres
from tests.migrations import drive

PASSWORD = "Zq9-distinctive-PW-7731"
WRONG = "Wrong-distinctive-PW-9904"
API_KEY = "sk-distinctive-API-KEY-5521"
SECRETS = (PASSWORD, WRONG, API_KEY)


async def stream_bytes(url: str, workflow_ids: list[str]) -> bytes:
    nc = await nats.connect(url, max_reconnect_attempts=1)
    out = b""
    try:
        js = nc.jetstream(timeout=5)
        for wid in workflow_ids:
            sub = await js.pull_subscribe(f"dbmigrate.events.{wid}.>", stream="DBMIGRATE_EVENTS")
            n = 0
            while True:
                try:
                    msgs = await sub.fetch(batch=500, timeout=1)
                except (nats.errors.TimeoutError, asyncio.TimeoutError):  # nats-py raises either
                    break
                for m in msgs:
                    out += m.subject.encode() + m.data + repr(m.headers).encode()
                    n += 1
                    await m.ack()
            await sub.unsubscribe()
            assert n >= 3, f"no events of {wid} on the stream"
    finally:
        await nc.close()
    return out


def test_no_password_or_api_key_appears_anywhere(stack_factory, nats_url):
    pg = PrivatePostgres(password=PASSWORD)
    try:
        pg.execute("CREATE DATABASE secret_src")
        pg.execute("CREATE DATABASE secret_dst")
        with psycopg.connect(pg.url_with_password("secret_src"), autocommit=True) as c:
            c.execute("CREATE TABLE public.t (id int PRIMARY KEY, v text); "
                      "INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 5000) g")
        stack = stack_factory().start()
        stack.start("web")
        ch, stub = stack.coordinator_stub()
        advisor = common_pb2.AdvisorConfig(kind=common_pb2.H2OGPTE, address="http://127.0.0.1:9", model="m",
                                           api_key=API_KEY, timeout_seconds=1)
        good = stub.CreateMigration(C.CreateMigrationRequest(
            source_url=pg.url_with_password("secret_src"), target_url=pg.url_with_password("secret_dst"),
            advisor=advisor, start=True), timeout=30).id
        m = drive(stub, good)
        assert E.Phase.Name(m.phase) == "COMPLETED", m.error
        bad = stub.CreateMigration(C.CreateMigrationRequest(
            source_url=pg.url_with_password("secret_src").replace(PASSWORD, WRONG),
            target_url=pg.url_with_password("secret_dst"), advisor=advisor, start=True), timeout=30).id
        failed = drive(stub, bad)
        assert E.Phase.Name(failed.phase) == "FAILED" and "password" in failed.error, failed.error

        texts: dict[str, bytes] = {}
        for path in sorted(stack.data_dir.rglob("*")):
            if path.is_file() and path.name != "secrets.json":
                texts[str(path)] = path.read_bytes()
        store = stack.data_dir / "secrets.json"
        if store.exists():
            assert oct(store.stat().st_mode & 0o777) == "0o600"
        texts["nats"] = asyncio.run(stream_bytes(nats_url, [good, bad]))
        for wid in (good, bad):
            texts[f"report {wid}"] = str(stub.GetReport(C.GetReportRequest(id=wid), timeout=30)).encode()
            texts[f"migration {wid}"] = str(stub.GetMigration(C.MigrationRef(id=wid), timeout=30)).encode()
            texts[f"watch {wid}"] = b"".join(e.SerializeToString() for e in stub.WatchEvents(
                C.WatchEventsRequest(workflow_id=wid, follow=False), timeout=30))
        texts["list"] = str(stub.ListMigrations(C.ListMigrationsRequest(), timeout=30)).encode()
        web = f"http://{stack.address('web')}"
        with httpx.Client(timeout=30) as client:
            for wid in (good, bad):
                for path in ("/api/workflow/status", "/api/reports", "/api/logs", "/api/reports/discovery",
                             "/api/reports/validation", "/api/reports/generation", "/api/reports/execution",
                             f"/api/migrations/{wid}"):
                    r = client.get(web + path, params={"id": wid})
                    assert r.status_code < 500, (path, r.text[:300])
                    texts[f"web {path} {wid}"] = r.content
            texts["web /api/migrations"] = client.get(web + "/api/migrations").content
        ch.close()
        leaks = [(where, s) for where, data in texts.items() for s in SECRETS if s.encode() in data]
        assert not leaks, leaks
        total = sum(len(v) for v in texts.values())
        print(f"\nsecrets scan: {len(texts)} sources, {total:,} bytes, {len(SECRETS)} secrets, 0 hits")
        ch2, stub2 = stack.coordinator_stub()
        generation = stub2.GetReport(C.GetReportRequest(id=good), timeout=30).generation
        ch2.close()
        assert generation.advisor == "rules" and "h2oGPTe advisor failed" in generation.advisor_note
    finally:
        pg.close()


def test_online_migration_keeps_the_source_password_out_of_everything_but_the_subscription(stack_factory,
                                                                                            nats_url):
    """Online, the target's subscription must hold the source password (PostgreSQL connects with it);
    nothing of DBMigrate's own shows it: event log, NATS, logs, status, reports. The subscription,
    with its connection string, is gone after the cutover."""
    pg = PrivatePostgres(password=PASSWORD, settings={"wal_level": "logical"})
    try:
        pg.execute("CREATE DATABASE online_src")
        pg.execute("CREATE DATABASE online_dst")
        with psycopg.connect(pg.url_with_password("online_src"), autocommit=True) as c:
            c.execute("CREATE TABLE public.t (id int PRIMARY KEY, v text); "
                      "INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 5000) g")
        stack = stack_factory().start()
        ch, stub = stack.coordinator_stub()
        wid = stub.CreateMigration(C.CreateMigrationRequest(
            source_url=pg.url_with_password("online_src"), target_url=pg.url_with_password("online_dst"),
            options=common_pb2.MigrationOptions(online=True), start=True), timeout=30).id
        deadline = time.monotonic() + 240
        while True:
            m = stub.GetMigration(C.MigrationRef(id=wid), timeout=10)
            if m.phase == E.AWAITING_APPROVAL:
                stub.Approve(C.ApproveRequest(id=wid), timeout=10)
            if m.phase == E.SYNCING and m.HasField("sync"):
                break
            assert m.phase not in (E.FAILED, E.DENIED, E.CANCELLED) and time.monotonic() < deadline, m.error
            time.sleep(0.2)
        with psycopg.connect(pg.url_with_password("online_src"), autocommit=True) as c:
            c.execute("INSERT INTO public.t VALUES (5001, 'streamed')")
        with psycopg.connect(pg.url_with_password("online_dst"), autocommit=True) as c:
            held = c.execute("SELECT subconninfo FROM pg_subscription").fetchone()[0]
        assert PASSWORD in held  # where PostgreSQL needs it, and only there
        stub.Cutover(C.CutoverRequest(id=wid), timeout=10)
        m = drive(stub, wid)
        assert m.phase == E.COMPLETED, m.error
        with psycopg.connect(pg.url_with_password("online_dst"), autocommit=True) as c:
            assert c.execute("SELECT count(*) FROM pg_subscription").fetchone()[0] == 0
            assert c.execute("SELECT v FROM public.t WHERE id = 5001").fetchone()[0] == "streamed"
        texts = {str(p): p.read_bytes() for p in sorted(stack.data_dir.rglob("*"))
                 if p.is_file() and p.name != "secrets.json"}
        texts["nats"] = asyncio.run(stream_bytes(nats_url, [wid]))
        texts["report"] = str(stub.GetReport(C.GetReportRequest(id=wid), timeout=30)).encode()
        texts["migration"] = str(stub.GetMigration(C.MigrationRef(id=wid), timeout=30)).encode()
        ch.close()
        leaks = [where for where, data in texts.items() if PASSWORD.encode() in data]
        assert not leaks, leaks
    finally:
        pg.close()
