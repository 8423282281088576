"""A whole migration run from the page alone in headless Chromium: real coordinator, real agents, real
PostgreSQL. Approve path to 100 %, deny path, and a missing database shown as a clear message."""
from __future__ import annotations

import pytest

from tests.fixtures.stack import Stack
from tests.web.conftest import screenshot, start_real, web_url
from tests.web.pages import WATCH, fill_form

pytestmark = pytest.mark.browser

TABLES = {"public.customers": 1500, "public.orders": 12000, "public.order_notes": 300}


def seed_source(db) -> None:
    db.execute("""
        CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text,
                                created_at timestamptz NOT NULL DEFAULT '2024-01-01 10:00+00');
        INSERT INTO customers (name, email) SELECT 'customer ' || g, 'c' || g || '@example.com'
          FROM generate_series(1, 1500) g;
        CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id),
                             amount numeric(10, 2) NOT NULL, note text);
        INSERT INTO orders (customer_id, amount, note) SELECT (g % 1500) + 1, g * 1.25, repeat('n', g % 40)
          FROM generate_series(1, 12000) g;
        CREATE INDEX orders_customer ON orders (customer_id);
        CREATE TABLE order_notes (order_id bigint PRIMARY KEY REFERENCES orders(id), body text);
        INSERT INTO order_notes SELECT g, 'note ' || g FROM generate_series(1, 300) g;
    """)


@pytest.fixture(scope="module")
def real_stack(tmp_path_factory, nats_url):
    stack = Stack(tmp_path_factory.mktemp("webreal"), nats_url)
    try:
        start_real(stack)
        yield stack
    finally:
        stack.stop()


def count_tables(db) -> int:
    return db.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")


def test_a_migration_runs_start_to_finish_from_the_page(real_stack, new_database, page_factory):
    source, target = new_database("websrc"), new_database("webdst")
    seed_source(source)
    page = page_factory()
    page.goto(web_url(real_stack) + "/#/new")
    page.evaluate(WATCH)
    fill_form(page, source.url, target.url, "shop to the new server")
    screenshot(page, "real-01-form-filled")
    page.click("#create-start")

    # The phases advance on the page by themselves, up to the decision.
    page.wait_for_selector("#approval:not([hidden])", timeout=180000)
    phases = page.evaluate("window.__phases")
    assert phases[0] == "DISCOVERING" and phases[-1] == "AWAITING_APPROVAL", phases
    states = page.eval_on_selector_all("#m-steps li", "els => els.map(e => e.dataset.state)")
    assert states == ["done", "done", "done", "waiting", "pending"]
    assert page.inner_text("#a-risk") in ("low", "medium", "high")
    assert page.is_enabled("#approve-btn"), page.inner_text("#approval")
    screenshot(page, "real-02-awaiting-approval")

    # The four reports, readable.
    page.click(".tab[data-tab='discovery']")
    body = page.inner_text("#report-body")
    for table in TABLES:
        assert table in body
    assert "Findings" in body and "Servers" in body
    screenshot(page, "real-03-report-discovery")
    page.click(".tab[data-tab='validation']")
    assert "The sample test migration passed" in page.inner_text("#report-body")
    screenshot(page, "real-04-report-validation")
    page.click(".tab[data-tab='generation']")
    body = page.inner_text("#report-body")
    assert "Risk" in body and "Tables in copy order" in body and "public.orders" in body
    screenshot(page, "real-05-report-plan")

    page.fill("#decision-comment", "checked the plan, go ahead")
    page.click("#approve-btn")
    page.wait_for_selector("#approval", state="hidden")
    page.wait_for_selector("#m-phase[data-phase='COMPLETED']", timeout=300000)
    phases = page.evaluate("window.__phases")
    assert phases[-2:] == ["EXECUTING", "COMPLETED"], phases
    assert page.get_attribute("#p-percent", "data-percent") == "100"
    statuses = page.eval_on_selector_all("#p-tables .trow", "els => els.map(e => [e.dataset.table, e.dataset.status])")
    assert sorted(t for t, _ in statuses) == sorted(TABLES)
    assert all(s == "verified" for _, s in statuses), statuses
    assert "Migration completed" in page.inner_text("#m-error")
    log = page.inner_text("#log")
    assert "approved: checked the plan, go ahead" in log and "migration COMPLETED" in log
    assert page.is_visible("#rollback-btn")
    screenshot(page, "real-06-completed")
    page.click(".tab[data-tab='execution']")
    body = page.inner_text("#report-body")
    assert "Rows copied" in body and "13,800" in body
    screenshot(page, "real-07-report-execution")
    if page.is_enabled(".tab[data-tab='verification']"):
        page.click(".tab[data-tab='verification']")
        assert "Source and target are equal" in page.inner_text("#report-body")
        screenshot(page, "real-08-report-verification")

    # What the person was shown is what happened: the target holds every row.
    for table, rows in TABLES.items():
        assert target.scalar(f"SELECT count(*) FROM {table}") == rows
    assert page.js_errors == []


def test_deny_from_the_page_leaves_the_target_untouched(real_stack, new_database, page_factory):
    source, target = new_database("websrc"), new_database("webdst")
    seed_source(source)
    page = page_factory()
    page.goto(web_url(real_stack) + "/#/new")
    fill_form(page, source.url, target.url, "deny me")
    page.click("#create-start")
    page.wait_for_selector("#approval:not([hidden])", timeout=180000)
    page.fill("#decision-comment", "not before the audit")
    page.click("#deny-btn")
    page.wait_for_selector("#m-phase[data-phase='DENIED']")
    assert not page.is_visible("#approval")
    assert "not before the audit" in page.inner_text("#m-error")
    assert page.eval_on_selector_all("#m-steps li", "els => els.map(e => e.dataset.state)") == [
        "done", "done", "done", "denied", "skipped"]
    assert "denied: not before the audit" in page.inner_text("#log")
    screenshot(page, "real-09-denied")
    assert count_tables(target) == 0
    assert page.js_errors == []


def test_a_missing_database_is_shown_as_a_clear_message(real_stack, new_database, page_factory):
    target = new_database("webdst")
    missing = "dbm_no_such_database_here"
    page = page_factory()
    page.goto(web_url(real_stack) + "/#/new")
    fill_form(page, target.url.rsplit("/", 1)[0] + "/" + missing, target.url, "typo in the source")
    page.click("#create-start")
    page.wait_for_selector("#m-phase[data-phase='FAILED']", timeout=120000)
    message = page.inner_text("#m-error")
    assert "The migration failed" in message
    assert missing in message and "does not exist" in message, message
    assert page.get_attribute("#m-steps li[data-step='discovery']", "data-state") == "failed"
    assert not page.is_visible("#approval")
    screenshot(page, "real-10-failed-missing-database")
    assert count_tables(target) == 0
    assert page.js_errors == []


def test_a_wrong_password_is_shown_as_a_clear_message(real_stack, password_postgres, new_database, page_factory):
    source_url, _right = password_postgres
    target = new_database("webdst")
    page = page_factory()
    page.goto(web_url(real_stack) + "/#/new")
    fill_form(page, source_url, target.url, "wrong password")
    page.fill("#f-source-password", "wrong-Passw0rd")
    page.click("#create-start")
    page.wait_for_selector("#m-phase[data-phase='FAILED']", timeout=120000)
    message = page.inner_text("#m-error")
    assert "authentication failed" in message and "check the user and password" in message, message
    assert page.get_attribute("#m-steps li[data-step='discovery']", "data-state") == "failed"
    assert page.is_hidden("#rollback-btn")  # nothing was created in the target: nothing to roll back
    screenshot(page, "real-11-failed-wrong-password")
    assert "wrong-Passw0rd" not in page.content() and "wrong-Passw0rd" not in page.inner_text("#log")
    assert count_tables(target) == 0
    assert page.js_errors == []
