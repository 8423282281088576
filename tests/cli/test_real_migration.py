"""End to end through the real agents: `dbmigrate migrate --approve` of a small real database, and `verify`."""
from __future__ import annotations

from tests.cli.helpers import dbmigrate

SCHEMA = """
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id bigint PRIMARY KEY, name text NOT NULL, email text UNIQUE);
CREATE TABLE shop.orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES shop.customers (id),
                          total numeric(10, 2), placed timestamptz NOT NULL, note text);
CREATE TABLE public."Order Notes" (id serial PRIMARY KEY, body text);
INSERT INTO shop.customers SELECT i, 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 300) i;
INSERT INTO shop.orders SELECT i, 1 + i % 300, i * 1.25, timestamptz '2024-01-01 00:00+00' + i * interval '1 hour',
                               CASE WHEN i % 7 = 0 THEN 'gift' END FROM generate_series(1, 2000) i;
INSERT INTO public."Order Notes" (body) SELECT 'note ' || i FROM generate_series(1, 50) i;
"""


def test_migrate_approve_copies_a_real_database_and_verify_proves_it(stack_factory, new_database):
    src, dst = new_database("clisrc"), new_database("clidst")
    src.execute(SCHEMA)
    stack = stack_factory().start()
    addr = stack.address("coordinator")

    r = dbmigrate("migrate", "--source", src.url, "--target", dst.url, "--approve", "--jobs", "2",
                  coordinator=addr, timeout=300)
    assert r.code == 0, r.err + r.out[-3000:]
    assert "approved automatically" in r.out and "COMPLETED and verified" in r.out
    assert "copied shop.orders" in r.out and "equal: yes" in r.out
    assert dst.scalar("SELECT count(*) FROM shop.orders") == 2000
    assert dst.scalar("SELECT sum(total) FROM shop.orders") == src.scalar("SELECT sum(total) FROM shop.orders")
    assert dst.scalar('SELECT count(*) FROM public."Order Notes"') == 50

    wid = r.out.split("migration ", 1)[1].split()[0]
    status = dbmigrate("status", wid, "--json", coordinator=addr).json
    assert status["phase"] == "COMPLETED" and status["recommendation"] == "APPROVE" and status["error"] == ""
    report = dbmigrate("report", wid, "--json", coordinator=addr).json
    assert {f'{t["schema"]}.{t["name"]}' for t in report["discovery"]["tables"]} >= {"shop.customers", "shop.orders"}
    assert report["validation"]["passed"] is True and report["verification"]["equal"] is True
    human = dbmigrate("report", wid, coordinator=addr)
    for section in ("== discovery", "== validation", "== generation", "== execution", "== verification"):
        assert section in human.out
    assert "severity" in human.out or "findings: none" in human.out

    same = dbmigrate("verify", src.url, dst.url, coordinator=addr, timeout=300)
    assert same.code == 0, same.err
    dst.execute("DELETE FROM shop.orders WHERE id = 77")
    differ = dbmigrate("verify", src.url, dst.url, "--json", coordinator=addr, timeout=300)
    assert differ.code == 1, differ.err
    assert differ.json["equal"] is False
    assert any(t["table"].endswith("orders") and not t["equal"] for t in differ.json["tables"])
    missing = dbmigrate("verify", src.url, dst.url.rsplit("/", 1)[0] + "/no_such_db_here", coordinator=addr)
    missing.assert_clean_error(2, "no_such_db_here")
