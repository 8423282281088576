"""The JSON API against the running web process (coordinator real, agents the scripted stand-ins)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from services.common.launcher import ServiceProcess
from tests.fixtures.nats import free_port
from tests.fixtures.stack import Stack
from tests.web.conftest import start_with_doubles, wait_phase, web_url

SOURCE_PASSWORD = "src-Secret-pw-4711"
TARGET_PASSWORD = "dst-Secret-pw-0815"
API_KEY = "sk-advisor-key-123456"
SECRETS = (SOURCE_PASSWORD, TARGET_PASSWORD, API_KEY)

ALL_PATHS = ["/api/configure", "/api/health", "/api/workflow/start", "/api/workflow/status", "/api/workflow/approve",
             "/api/workflow/deny", "/api/reset", "/api/logs", "/api/reports", "/api/reports/{agent}",
             "/api/migrations", "/api/migrations/{id}", "/api/events", "/api/workflow/cancel",
             "/api/workflow/rollback"]


def configure(client: httpx.Client, **extra) -> httpx.Response:
    body = {
        "name": "orders to the new cluster",
        "source": f"postgresql://app:{SOURCE_PASSWORD}@127.0.0.1:5432/shop",
        "target": {"host": "127.0.0.1", "port": 5432, "dbname": "shop_new", "user": "app",
                   "password": TARGET_PASSWORD},
        **extra,
    }
    return client.post("/api/configure", json=body)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret was echoed back: {text[:300]}"


def error_of(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and body["error"], body
    assert "Traceback" not in body["error"]
    return body["error"]


def test_health_and_openapi_describe_every_path(client):
    health = client.get("/api/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["coordinator"]["status"] == "SERVING"
    assert health.json()["token_required"] is False
    doc = client.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert set(ALL_PATHS) <= set(doc["paths"])


def test_approve_path_from_configure_to_completed(client):
    created = configure(client, advisor={"kind": "rules", "api_key": API_KEY})
    assert created.status_code == 201, created.text
    assert_no_secret(created.text)
    m = created.json()
    wid = m["id"]
    assert m["phase"] == "CREATED" and m["actions"]["start"]
    assert m["source_url"] == "postgresql://app@127.0.0.1:5432/shop"
    assert "password" not in m["source"] and "password" not in m["target"]

    started = client.post("/api/workflow/start", json={"id": wid})
    assert started.status_code == 200 and started.json()["phase"] != "CREATED"
    assert "only a CREATED migration can be started" in error_of(client.post("/api/workflow/start", json={"id": wid}), 409)

    waiting = wait_phase(client, wid, {"AWAITING_APPROVAL"})
    assert [s["state"] for s in waiting["steps"]] == ["done", "done", "done", "waiting", "pending"]
    assert waiting["actions"]["approve"] and waiting["actions"]["deny"] and waiting["blockers"] == []
    assert len(waiting["tables"]) == 6

    reports = client.get("/api/reports", params={"id": wid}).json()
    assert reports["discovery"]["summary"] and reports["validation"]["passed"] is True
    assert reports["generation"]["risk"] == "RISK_LOW" and reports["execution"] is None
    assert client.get("/api/reports/generation", params={"id": wid}).json()["report"]["recommendation"] == "APPROVE"
    assert "not there yet" in error_of(client.get("/api/reports/execution", params={"id": wid}), 404)

    approved = client.post("/api/workflow/approve", json={"id": wid, "comment": "checked with the team"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval_comment"] == "checked with the team"
    done = wait_phase(client, wid, {"COMPLETED"})
    assert done["progress"]["percent"] == 100 and done["progress"]["tables_verified"] == 6
    assert all(s["state"] == "done" for s in done["steps"])
    assert "AWAITING_APPROVAL" in error_of(client.post("/api/workflow/approve", json={"id": wid}), 409)

    logs = client.get("/api/logs", params={"id": wid}).json()
    messages = [line["message"] for line in logs["lines"]]
    assert messages[0].startswith("migration created") and messages[-1] == "migration COMPLETED"
    assert "approved: checked with the team" in messages
    assert logs["last_seq"] >= done["last_seq"]
    tail = client.get("/api/logs", params={"id": wid, "limit": 2}).json()
    assert [line["message"] for line in tail["lines"]] == messages[-2:] and tail["truncated"]

    assert client.get("/api/reports/execution", params={"id": wid}).json()["report"]["verified"] is True
    listed = client.get("/api/migrations").json()["migrations"]
    assert listed[0]["id"] == wid and listed[0]["phase"] == "COMPLETED"
    assert client.get(f"/api/migrations/{wid}").json()["phase"] == "COMPLETED"
    # Without an id, "the current migration" is the most recent one.
    assert client.get("/api/workflow/status").json()["id"] == wid
    for path in ("/api/workflow/status", "/api/reports", "/api/logs", f"/api/migrations/{wid}", "/api/migrations"):
        assert_no_secret(client.get(path, params={"id": wid}).text)


def test_deny_needs_a_reason_and_reset_cancels_only_what_has_not_ended(client):
    wid = configure(client, start=True).json()["id"]
    wait_phase(client, wid, {"AWAITING_APPROVAL"})
    assert "reason is required" in error_of(client.post("/api/workflow/deny", json={"id": wid}), 400)
    denied = client.post("/api/workflow/deny", json={"id": wid, "reason": "not during business hours"})
    assert denied.status_code == 200
    d = denied.json()
    assert d["phase"] == "DENIED" and d["deny_reason"] == "not during business hours"
    assert [s["state"] for s in d["steps"]][3:] == ["denied", "skipped"]
    assert "AWAITING_APPROVAL" in error_of(client.post("/api/workflow/approve", json={"id": wid}), 409)

    # A reset after the end changes nothing; a reset of one waiting for approval cancels it.
    r = client.post("/api/reset", json={"id": wid})
    assert r.status_code == 200 and r.json()["cancelled"] is None and r.json()["migration"]["phase"] == "DENIED"
    other = configure(client, start=True).json()["id"]
    wait_phase(client, other, {"AWAITING_APPROVAL"})
    r = client.post("/api/reset")
    assert r.status_code == 200 and r.json()["cancelled"] == other
    assert r.json()["migration"]["phase"] == "CANCELLED"
    assert wait_phase(client, other, {"CANCELLED"})["steps"][3]["state"] == "cancelled"


def test_the_roles_and_privileges_choices_reach_the_migration(client):
    m = configure(client, options={"create_roles": True, "no_owner": True, "no_privileges": False}).json()
    assert m["options"]["create_roles"] is True and m["options"]["no_owner"] is True
    assert m["options"]["no_privileges"] is False
    assert "must be a boolean" in error_of(configure(client, options={"no_owner": "yes"}), 400) or \
        "no_owner" in error_of(configure(client, options={"no_owner": "yes"}), 400)


def test_bad_input_gets_400_with_what_to_fix(client):
    assert "not valid JSON" in error_of(client.post("/api/configure", content=b"{nope"), 400)
    assert "JSON object" in error_of(client.post("/api/configure", json=[1, 2]), 400)
    assert "source is required" in error_of(client.post("/api/configure", json={"target": "postgresql://u@h/d"}), 400)
    assert "postgresql://" in error_of(configure(client, source="mysql://u:pw@h/db"), 400)
    assert "same database" in error_of(configure(client, target="postgresql://app@127.0.0.1:5432/shop"), 400)
    assert "unknown field 'sorce'" in error_of(client.post("/api/configure", json={"sorce": "x"}), 400)
    bad_port = {"host": "h", "port": "5432", "dbname": "d", "user": "u"}
    assert "port must be a whole number" in error_of(configure(client, target=bad_port), 400)
    assert "jobs" in error_of(configure(client, options={"jobs": 1000}), 400)
    assert "advisor.kind" in error_of(configure(client, advisor={"kind": "oracle"}), 400)
    assert "API key" in error_of(configure(client, advisor={"kind": "h2ogpte", "address": "https://h2o.example"}), 400)
    assert "not a whole number" in error_of(client.get("/api/migrations", params={"limit": "ten"}), 400)
    assert "is not a migration id" in error_of(client.get("/api/workflow/status", params={"id": "../etc"}), 400)
    assert "comment must be a string" in error_of(client.post("/api/workflow/approve", json={"comment": 5}), 400)


def test_unknown_things_get_404_and_wrong_methods_405(client):
    for path in ("/api/workflow/status", "/api/reports", "/api/logs", "/api/reports/discovery", "/api/events"):
        assert "not found" in error_of(client.get(path, params={"id": "doesnotexist1"}), 404)
    assert "not found" in error_of(client.post("/api/workflow/approve", json={"id": "doesnotexist1"}), 404)
    assert "use one of discovery" in error_of(client.get("/api/reports/planner"), 404)
    assert "/api/openapi.json" in error_of(client.get("/api/nothing-here"), 404)
    assert "not allowed" in error_of(client.get("/api/configure"), 405)
    assert "not allowed" in error_of(client.delete("/api/workflow/status"), 405)


def test_events_stream_carries_log_lines_and_status_snapshots(client, double_stack):
    wid = configure(client, start=True).json()["id"]
    wait_phase(client, wid, {"AWAITING_APPROVAL"})
    seen: list[tuple[str, dict]] = []
    with httpx.Client(base_url=web_url(double_stack), timeout=30) as sse:
        with sse.stream("GET", "/api/events", params={"id": wid, "from_seq": 0}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            approved = False
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    seen.append((event, data))
                    if event == "status" and data["phase"] == "AWAITING_APPROVAL" and not approved:
                        assert client.post("/api/workflow/approve", json={"id": wid}).status_code == 200
                        approved = True
                    if event == "status" and data["phase"] == "COMPLETED":
                        break
    events = [d for e, d in seen if e == "workflow_event"]
    seqs = [d["seq"] for d in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert events[0]["type"] == "migration_created" and events[0]["version"] == 1
    kinds = {d["type"] for d in events}
    assert {"plan_generated", "approved", "table_verified", "migration_completed"} <= kinds  # small tables: copy in it
    plan = next(d for d in events if d["type"] == "plan_generated")
    assert plan["report"] == "generation" and "payload" not in plan  # reports come from /api/reports
    progress = next(d for d in events if d["type"] == "table_progress")
    assert progress["payload"]["table"].startswith("public.t") and progress["log"] is None
    assert any(e == "status" and d["phase"] == "EXECUTING" for e, d in seen)
    assert_no_secret(json.dumps(seen))


def test_status_lists_the_tables_the_view_asks_for(client, double_stack):
    """The page asks for what it shows (a live view, a filter, at most 200 rows); the summary counts
    every table whatever is listed, and the stream's status snapshots list the same view."""
    wid = configure(client, start=True).json()["id"]
    wait_phase(client, wid, {"AWAITING_APPROVAL"})
    assert client.post("/api/workflow/approve", json={"id": wid}).status_code == 200
    done = wait_phase(client, wid, {"COMPLETED"})
    assert len(done["tables"]) == done["tables_matched"] == done["progress"]["tables"] == 6  # all by default
    assert done["verified"] is True
    one = client.get("/api/workflow/status", params={"id": wid, "filter": "T3"}).json()  # part of a name, any case
    assert [t["table"] for t in one["tables"]] == ["public.t3"] and one["progress"]["tables"] == 6
    two = client.get("/api/workflow/status", params={"id": wid, "filter": "public.t[12]", "table_limit": 1}).json()
    assert len(two["tables"]) == 1 and two["tables_matched"] == 2
    assert client.get("/api/workflow/status", params={"id": wid, "tables": "failed"}).json()["tables"] == []
    none = client.get(f"/api/migrations/{wid}", params={"tables": "none"}).json()
    assert none["tables"] == [] and none["progress"]["tables_verified"] == 6 and none["phase"] == "COMPLETED"
    error_of(client.get("/api/workflow/status", params={"id": wid, "tables": "most"}), 400)
    error_of(client.get("/api/workflow/status", params={"id": wid, "table_limit": "-1"}), 400)
    with httpx.Client(base_url=web_url(double_stack), timeout=30) as sse:
        with sse.stream("GET", "/api/events", params={"id": wid, "tables": "all", "filter": "t5"}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: ") and '"phase"' in line:
                    assert [t["table"] for t in json.loads(line[6:])["tables"]] == ["public.t5"]
                    break


def test_no_password_or_api_key_in_any_answer(client, double_stack):
    created = configure(client, advisor={"kind": "h2ogpte", "address": "https://h2o.example", "api_key": API_KEY,
                                         "model": "auto"}, start=True)
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    wait_phase(client, wid, {"AWAITING_APPROVAL"})
    client.post("/api/workflow/approve", json={"id": wid})
    wait_phase(client, wid, {"COMPLETED"})
    texts = [created.text]
    for path in ("/api/workflow/status", "/api/reports", "/api/logs", "/api/migrations", f"/api/migrations/{wid}",
                 "/api/reports/discovery", "/api/reports/generation", "/api/reports/execution", "/api/health"):
        r = client.get(path, params={"id": wid})
        assert r.status_code == 200, (path, r.text)
        texts.append(r.text)
    with client.stream("GET", "/api/events", params={"id": wid, "from_seq": 0}) as stream:
        body = ""
        for line in stream.iter_lines():
            body += line + "\n"
            if "migration_completed" in line:
                break
    texts.append(body)
    for text in texts:
        assert_no_secret(text)
        assert '"password"' not in text and '"api_key"' not in text
    assert "migration_completed" in body


# ---- separate web processes: token, coordinator down, bind address ----

def _wait_page(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def test_token_is_required_for_every_change(stack_factory):
    stack = start_with_doubles(stack_factory({"DBMIGRATE_WEB_TOKEN": "web-token-42"}))
    with httpx.Client(base_url=web_url(stack), timeout=20) as c:
        assert c.get("/api/health").json()["token_required"] is True
        r = configure(c)
        assert "needs the web token" in error_of(r, 401) and r.headers["www-authenticate"] == "Bearer"
        assert "token is wrong" in error_of(c.post("/api/configure", json={}, headers={"Authorization": "Bearer nope"}), 401)
        for path in ("/api/workflow/start", "/api/workflow/approve", "/api/workflow/deny", "/api/reset",
                     "/api/workflow/cancel", "/api/workflow/rollback"):
            error_of(c.post(path, json={}), 401)
        ok = c.post("/api/configure", headers={"Authorization": "Bearer web-token-42"},
                    json={"source": "postgresql://a@127.0.0.1/one", "target": "postgresql://a@127.0.0.1/two"})
        assert ok.status_code == 201, ok.text
        assert "web-token-42" not in ok.text
        # Reading needs no token.
        assert c.get("/api/workflow/status").json()["id"] == ok.json()["id"]
        assert c.get("/api/auth").json() == {"token_required": True, "authorized": False}
        assert c.get("/api/auth", headers={"Authorization": "Bearer web-token-42"}).json()["authorized"] is True
    assert "DBMIGRATE_WEB_TOKEN is set" in stack.log("web")


def test_coordinator_down_gives_503_with_a_clear_message(tmp_path, nats_url):
    stack = Stack(tmp_path, nats_url)  # nothing is started on the coordinator's port
    proc = ServiceProcess("web", stack.address("web"), dict(stack.env), str(tmp_path / "web.log"))
    proc.start(wait=False)
    try:
        base = web_url(stack)
        _wait_page(base + "/")
        health = httpx.get(base + "/api/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["coordinator"]["reachable"] is False
        assert "not reachable" in health.json()["error"] and stack.address("coordinator") in health.json()["error"]
        for r in (httpx.get(base + "/api/workflow/status", timeout=20),
                  httpx.post(base + "/api/configure", timeout=20,
                             json={"source": "postgresql://a@h/one", "target": "postgresql://a@h/two"})):
            assert "start it (python -m coordinator)" in error_of(r, 503)
    finally:
        proc.stop()


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            ip = s.getsockname()[0]
        return None if ip.startswith("127.") else ip
    except OSError:
        return None


def test_without_token_it_listens_on_localhost_only(tmp_path):
    port = free_port()
    env = {**os.environ, "DBMIGRATE_WEB_ADDR": f"0.0.0.0:{port}", "DBMIGRATE_COORDINATOR_ADDR": f"127.0.0.1:{free_port()}"}
    env.pop("DBMIGRATE_WEB_TOKEN", None)
    log = open(tmp_path / "web.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "web"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_page(f"http://127.0.0.1:{port}/")
        text = (tmp_path / "web.log").read_text()
        assert "no DBMIGRATE_WEB_TOKEN set, so listening on localhost only" in text
        outside = _outside_address()
        if outside:
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=2).close()
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("body", [
    b'{"source": "postgresql://a@h/\\ud800", "target": "postgresql://a@h/b"}',
    b'{"source": {"host": "h", "port": -1, "dbname": "d", "user": "u"}, "target": "postgresql://a@h/b"}',
    b'{"source": {"host": "h", "port": 99999999999, "dbname": "d", "user": "u"}, "target": "postgresql://a@h/b"}',
    b'{"source": "postgresql://a@h/one", "target": "postgresql://a@h/two", "options": {"jobs": 1.5}}',
    b'{"source": "postgresql://a@h/one", "target": "postgresql://a@h/two", "options": {"jobs": NaN}}',
    b'{"source": "postgresql://a@h/one", "target": "postgresql://a@h/two", "options": {"include": [1]}}',
    b'{"source": "postgresql://a@h/one", "target": "postgresql://a@h/two", "options": {"split_threshold_bytes": 1e30}}',
    b'{"source": {"host": "h", "dbname": "d", "user": "u", "params": {"connect_timeout": 5}}, "target": "postgresql://a@h/b"}',
    b'{"source": "postgresql://a@h/one", "target": "postgresql://a@h/two", "name": "' + b"n" * 300 + b'"}',
    b'{"source": {}, "target": "postgresql://a@h/b"}',
    b'{"source": "postgresql://a@h/one", "target": "postgresql://a@h/two", "advisor": 7}',
    b'{"source": "postgresql://a@h/one", "target": "postgresql://a@h/two", "start": "yes"}',
])
def test_malformed_configure_bodies_are_400_never_500(client, body):
    error_of(client.post("/api/configure", content=body), 400)


def test_odd_query_values_are_400_never_500(client):
    error_of(client.get("/api/events", params={"from_seq": "9" * 30}), 400)
    error_of(client.get("/api/events", params={"from_seq": "-1"}), 400)
    error_of(client.get("/api/logs", params={"limit": "0"}), 400)
    error_of(client.get("/api/workflow/status", params={"id": "x" * 500}), 400)
    error_of(client.get("/api/migrations/%E2%9C%93"), 400)
    wid = configure(client).json()["id"]
    # A reconnecting browser with an absurd Last-Event-ID still gets the stream (from now on).
    with client.stream("GET", "/api/events", params={"id": wid}, headers={"Last-Event-ID": "9" * 40}) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if line.startswith("event: status"):
                break
