"""`make demo` (python -m scripts.demo) from nothing: sample database, its own stack, a verified migration."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg

from tests.fixtures.nats import free_port
from tests.fixtures.pg import drop_database


def test_demo_builds_the_sample_starts_the_stack_and_migrates_it_verified(pg_admin_url, pg18, nats_url, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    source, target = f"dbm_demo_src_{suffix}", f"dbm_demo_dst_{suffix}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBMIGRATE_")}
    # From the local PostgreSQL 15 to another server, of major version 18.
    env.update({"DBMIGRATE_DEMO_PG": pg_admin_url, "DBMIGRATE_DEMO_TARGET_PG": pg18.url, "DBMIGRATE_DEMO_SOURCE_DB": source,
                "DBMIGRATE_DEMO_TARGET_DB": target, "DBMIGRATE_DEMO_SCALE": "0.02",
                "DBMIGRATE_DATA_DIR": str(tmp_path), "DBMIGRATE_NATS_URL": nats_url})
    for name in ("coordinator", "discovery", "validation", "generation", "execution", "web"):
        env[f"DBMIGRATE_{name.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
    try:
        p = subprocess.run([sys.executable, "-m", "scripts.demo"], env=env, capture_output=True, text=True,
                           timeout=400)
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
        assert "sales.order_items" in p.stdout and "target " + target + " is empty" in p.stdout
        assert "coordinator  ready on" in p.stdout  # it started its own stack
        assert "approved automatically: --approve was given and the recommendation is APPROVE" in p.stdout
        assert "COMPLETED and verified" in p.stdout and "== verification" in p.stdout
        assert "Stopping the services the demo started" in p.stdout
        counts = []
        for admin, db in ((pg_admin_url, source), (pg18.url, target)):
            with psycopg.connect(psycopg.conninfo.make_conninfo(admin, dbname=db)) as c:
                counts.append(c.execute("SELECT (SELECT count(*) FROM sales.order_items), "
                                        "(SELECT count(*) FROM audit.\"login attempts\"), "
                                        "(SELECT sum(total) FROM sales.orders)").fetchone())
        assert counts[0] == counts[1] and counts[0][0] == 4000
    finally:
        drop_database(pg_admin_url, source)
        drop_database(pg18.url, target)
