"""The README's grpcurl examples, run as written (only the address changed) with the real grpcurl binary."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GRPCURL_DIR = Path(sys.executable).parent


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## grpcurl\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def run(line: str, address: str, env: dict[str, str], timeout: float = 30) -> str:
    """Runs one example through bash; `ID=$(...)` lines set env["ID"] for the ones after."""
    line = line.replace("localhost:50050", address)
    if line.startswith("ID="):
        line = f"{line} && echo \"$ID\""
    p = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{line}\n{p.stderr}"
    if line.startswith("ID="):
        env["ID"] = p.stdout.strip().splitlines()[-1]
    return p.stdout


def test_readme_grpcurl_examples_work_as_written(stack_factory):
    stack = stack_factory({"DOUBLE_UNITS": "3", "DOUBLE_UNIT_SECONDS": "0.01"})
    stack.start_doubles()
    stack.start("coordinator")
    address = stack.address("coordinator")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBMIGRATE_")}
    env["PATH"] = f"{GRPCURL_DIR}:{env.get('PATH', '')}"
    examples = readme_examples()
    assert {e.split(" localhost:50050")[0].split()[-1] for e in examples if " list" in e or "describe" in e}

    out = {}
    for line in examples:
        key = line.split("localhost:50050 ", 1)[1] if "localhost:50050 " in line else line
        if '"follow": true' in line:
            continue  # a live stream: run below
        if "Coordinator/Approve" in line:
            deadline = time.monotonic() + 30  # the stand-in agents need a moment to reach the approval
            while '"phase": "AWAITING_APPROVAL"' not in run(
                    f"grpcurl -plaintext -d '{{\"id\": \"{env['ID']}\"}}' localhost:50050 "
                    "dbmigrate.v1.Coordinator/GetMigration", address, env):
                assert time.monotonic() < deadline
                time.sleep(0.2)
        out[key] = run(line, address, env)

    assert {"dbmigrate.v1.Coordinator", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= set(out["list"].split())
    assert "rpc CreateMigration ( .dbmigrate.v1.CreateMigrationRequest )" in out["describe dbmigrate.v1.Coordinator"]
    assert "rpc WatchEvents ( .dbmigrate.v1.WatchEventsRequest ) returns ( stream .dbmigrate.v1.WorkflowEvent )" \
        in out["describe dbmigrate.v1.Coordinator"]
    assert "string source_url = 1;" in out["describe dbmigrate.v1.CreateMigrationRequest"]
    assert '"status": "SERVING"' in out["grpc.health.v1.Health/Check"]
    wid = env["ID"]
    assert re.fullmatch(r"[0-9a-f]{12}", wid)
    start = out["dbmigrate.v1.Coordinator/StartMigration"]
    assert f'"id": "{wid}"' in start and "secret@" not in start
    approved = out["dbmigrate.v1.Coordinator/Approve"]
    assert '"phase": "EXECUTING"' in approved and '"approval_comment": "reviewed the plan"' in approved
    report = out["dbmigrate.v1.Coordinator/GetReport"]
    assert '"recommendation": "APPROVE"' in report
    replay = out["dbmigrate.v1.Coordinator/WatchEvents"]
    assert '"migration_created"' in replay and '"approval_requested"' in replay and '"approved"' in replay
    assert "secret@" not in replay and '"password"' not in replay
    assert f'"id": "{wid}"' in out["dbmigrate.v1.Coordinator/ListMigrations"]

    follow = next(e for e in examples if '"follow": true' in e).replace("localhost:50050", address)
    proc = subprocess.Popen(["bash", "-c", follow], env=env, stdout=subprocess.PIPE, text=True)
    try:
        seen = ""
        deadline = time.monotonic() + 30
        while '"migration_completed"' not in seen:
            assert time.monotonic() < deadline, seen[-2000:]
            seen += proc.stdout.readline()
        assert proc.poll() is None, "follow must keep the stream open after the last event"
    finally:
        proc.terminate()
        proc.wait(10)


def test_grpcurl_shows_the_real_agents_reports(stack_factory, new_database):
    """Through the real agents: discovery report, risk, plan and recommendation, over grpcurl."""
    import json

    src, dst = new_database("gcsrc"), new_database("gcdst")
    src.execute("CREATE TABLE public.items (id int PRIMARY KEY, v text); "
                "INSERT INTO public.items SELECT g, 'v' || g FROM generate_series(1, 3000) g; ANALYZE;")
    stack = stack_factory().start()
    address = stack.address("coordinator")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBMIGRATE_")}
    env["PATH"] = f"{GRPCURL_DIR}:{env.get('PATH', '')}"

    def call(method: str, body: dict) -> dict:
        p = subprocess.run(["grpcurl", "-plaintext", "-d", json.dumps(body), address, f"dbmigrate.v1.Coordinator/{method}"],
                           env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    wid = call("CreateMigration", {"source_url": src.url, "target_url": dst.url, "start": True})["id"]
    deadline = time.monotonic() + 120
    while (m := call("GetMigration", {"id": wid}))["phase"] != "AWAITING_APPROVAL":
        assert m["phase"] not in ("FAILED", "DENIED") and time.monotonic() < deadline, m
        time.sleep(0.3)
    assert m["risk"] == "RISK_LOW" and m["recommendation"] == "APPROVE"
    report = call("GetReport", {"id": wid})
    assert [t["name"] for t in report["discovery"]["tables"]] == ["items"]
    assert report["discovery"]["advisor"] == "rules" and report["discovery"]["summary"]
    assert report["validation"]["passed"] is True
    generation = report["generation"]
    assert generation["risk"] == "RISK_LOW" and generation["recommendation"] == "APPROVE"
    assert [s["name"] for s in generation["plan"]["steps"]][:3] == ["pre-data", "extension-data", "data"]
    assert generation["plan"]["tables"][0]["name"] == "items" and generation["reasons"]
