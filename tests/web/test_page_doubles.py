"""The page in headless Chromium against the real coordinator and web server, with the scripted stand-in
agents: inline validation, live-update latency, approval and deny controls, token login, narrow screens."""
from __future__ import annotations

import pytest

from dbmigrate.v1 import coordinator_pb2
from services.common.launcher import ServiceProcess
from tests.fixtures.stack import Stack
from tests.web.conftest import screenshot, start_with_doubles, web_url
from tests.web.pages import WATCH, fill_form

pytestmark = pytest.mark.browser

def test_form_checks_the_input_before_anything_is_sent(double_stack, page_factory):
    page = page_factory()
    page.goto(web_url(double_stack) + "/#/new")
    page.wait_for_selector("#configure:not([hidden])")
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/api/configure" in r.url else None)
    page.fill("#f-source", "mysql://app@db.example/shop")
    page.fill("#f-target", "postgresql://app@127.0.0.1:5432")
    page.click("details.advanced summary")
    page.fill("#f-jobs", "500")
    page.click("details.advanced summary")  # closed again: the error must open it
    page.click("#create-start")
    assert page.inner_text("#e-source") == "The URL must start with postgresql://"
    assert "database name is missing" in page.inner_text("#e-target")
    assert page.inner_text("#e-jobs") == "Between 0 and 64"
    assert page.is_visible("#config-error") and "Fix the fields marked in red" in page.inner_text("#config-error")
    page.select_option("#f-advisor", "h2ogpte")
    page.click("#create-start")
    assert "https://host" in page.inner_text("#e-advisor-address")
    assert page.inner_text("#e-advisor-key") == "The API key is required"
    screenshot(page, "form-inline-validation")
    # Same database on both sides is caught while typing.
    page.fill("#f-source", "postgresql://app@127.0.0.1:5432/shop")
    page.fill("#f-target", "postgresql://app@127.0.0.1/shop")
    page.locator("#f-target").blur()
    assert page.inner_text("#e-source") == ""
    assert page.inner_text("#e-target") == "The target is the same database as the source"
    assert requests == []
    assert page.js_errors == []


def test_live_updates_arrive_within_a_second_of_the_event(stack_factory, page_factory):
    stack = start_with_doubles(stack_factory(), DOUBLE_UNITS="8", DOUBLE_UNIT_SECONDS="0.4")
    page = page_factory()
    page.goto(web_url(stack) + "/#/new")
    page.evaluate(WATCH)
    fill_form(page, "postgresql://app:pw-in-form-1@127.0.0.1:5432/shop", "postgresql://app@127.0.0.1:5432/shop_new")
    page.fill("#f-source-password", "")
    page.click("#create-start")
    page.wait_for_selector("#approval:not([hidden])")
    page.wait_for_selector("#m-steps li[data-step='approval'][data-state='waiting']")
    page.fill("#decision-comment", "go")
    page.click("#approve-btn")
    page.wait_for_selector("#m-phase[data-phase='COMPLETED']", timeout=30000)
    phases = page.evaluate("window.__phases")
    assert phases[0] == "DISCOVERING" and "AWAITING_APPROVAL" in phases and phases[-1] == "COMPLETED"
    assert "EXECUTING" in phases
    arrivals = page.evaluate("window.__arrivals")
    copied = [a for a in arrivals if a["event"] in ("table_copied", "table_verified")]
    assert len(copied) == 16, arrivals
    from datetime import datetime
    delays = [a["at"] / 1000 - datetime.fromisoformat(a["time"].replace("Z", "+00:00")).timestamp() for a in arrivals]
    assert max(delays) < 1.0, f"slowest live update took {max(delays):.3f}s: {delays}"
    assert page.get_attribute("#p-percent", "data-percent") == "100"
    assert "pw-in-form-1" not in page.content()
    assert page.js_errors == []


def test_approval_controls_appear_only_while_waiting_and_deny_needs_a_reason(double_stack, page_factory):
    page = page_factory()
    page.goto(web_url(double_stack) + "/#/new")
    fill_form(page, "postgresql://app@127.0.0.1:5432/crm", "postgresql://app@127.0.0.1:5432/crm_new", "crm move")
    page.click("#create-only")
    page.wait_for_selector("#m-phase[data-phase='CREATED']")
    assert not page.is_visible("#approval") and page.is_visible("#start-btn")
    page.click("#start-btn")
    page.wait_for_selector("#approval:not([hidden])")
    assert page.inner_text("#a-risk") == "low" and page.inner_text("#a-rec") == "approve"
    # The plan report opens by itself when the decision is needed.
    page.wait_for_selector(".tab.sel[data-tab='generation']")
    screenshot(page, "doubles-awaiting-approval")
    page.click("#deny-btn")
    assert "Write why you deny it" in page.inner_text("#decision-error")
    page.fill("#decision-comment", "wait for the maintenance window")
    page.click("#deny-btn")
    page.wait_for_selector("#m-phase[data-phase='DENIED']")
    assert not page.is_visible("#approval")
    assert "wait for the maintenance window" in page.inner_text("#m-error")
    assert page.get_attribute("#m-steps li[data-step='approval']", "data-state") == "denied"
    # The history on the left shows it with its end state.
    assert "denied" in page.inner_text("#history-list a.current").lower()
    assert page.js_errors == []


def test_token_field_makes_changes_possible(stack_factory, page_factory):
    stack = start_with_doubles(stack_factory({"DBMIGRATE_WEB_TOKEN": "page-token-7"}))
    page = page_factory()
    page.goto(web_url(stack) + "/#/new")
    page.wait_for_selector("#login:not([hidden])")
    fill_form(page, "postgresql://app@127.0.0.1:5432/a", "postgresql://app@127.0.0.1:5432/b")
    page.click("#create-start")
    page.wait_for_selector("#config-error:not([hidden])")
    assert "needs the web token" in page.inner_text("#config-error")
    page.fill("#token", "wrong")
    page.click("#login button")
    page.wait_for_function("document.getElementById('login-state').textContent.includes('wrong token')")
    page.fill("#token", "page-token-7")
    page.click("#login button")
    page.wait_for_function("document.getElementById('login-state').textContent.includes('accepted')")
    screenshot(page, "token-login")
    page.click("#create-start")
    page.wait_for_selector("#approval:not([hidden])")
    assert page.js_errors == []


def test_narrow_screen_shows_everything_in_one_column(double_stack, page_factory):
    wide = page_factory()
    wide.goto(web_url(double_stack) + "/#/new")
    fill_form(wide, "postgresql://app@127.0.0.1:5432/hr", "postgresql://app@127.0.0.1:5432/hr_new", "hr to new cluster")
    wide.click("#create-start")
    wide.wait_for_selector("#approval:not([hidden])")
    wide.click("#approve-btn")
    wide.wait_for_selector("#m-phase[data-phase='COMPLETED']")
    url = wide.url
    page = page_factory(width=390, height=844)
    page.goto(url)
    page.wait_for_selector("#m-phase[data-phase='COMPLETED']")
    page.wait_for_selector("#reports-card:not([hidden])")
    # Nothing is wider than the screen: no sideways scrolling of the whole page.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "narrow-completed")
    page.goto(web_url(double_stack) + "/#/new")
    page.wait_for_selector("#configure:not([hidden])")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "narrow-form")
    assert page.js_errors == [] and wide.js_errors == []


def test_cancel_while_waiting_for_approval(double_stack, page_factory):
    page = page_factory()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(web_url(double_stack) + "/#/new")
    fill_form(page, "postgresql://app@127.0.0.1:5432/billing", "postgresql://app@127.0.0.1:5432/billing_new", "billing")
    page.click("#create-start")
    page.wait_for_selector("#approval:not([hidden])")
    page.click("#cancel-btn")
    page.wait_for_selector("#m-phase[data-phase='CANCELLED']")
    assert page.eval_on_selector_all("#m-steps li", "els => els.map(e => e.dataset.state)") == [
        "done", "done", "done", "cancelled", "skipped"]
    assert not page.is_visible("#approval") and not page.is_visible("#cancel-btn")
    assert "cancelled by the operator" in page.inner_text("#log")
    assert page.js_errors == []


def test_page_says_so_when_the_coordinator_is_down(tmp_path, nats_url, page_factory):
    stack = Stack(tmp_path, nats_url)  # nothing listens on the coordinator's address
    web = ServiceProcess("web", stack.address("web"), dict(stack.env), str(tmp_path / "web.log"))
    web.start(wait=False)
    try:
        page = page_factory()
        for _ in range(100):
            try:
                page.goto(web_url(stack) + "/")
                break
            except Exception:  # noqa: BLE001 - the server is still starting
                page.wait_for_timeout(200)
        page.wait_for_selector("#health.bad")
        assert page.inner_text("#health") == "coordinator unavailable"
        page.wait_for_selector("#configure:not([hidden])")
        assert "not reachable" in page.inner_text("#history-list")
        fill_form(page, "postgresql://app@127.0.0.1:5432/a", "postgresql://app@127.0.0.1:5432/b")
        page.click("#create-start")
        page.wait_for_selector("#config-error:not([hidden])")
        assert "start it (python -m coordinator)" in page.inner_text("#config-error")
        screenshot(page, "coordinator-down")
        assert page.js_errors == []
    finally:
        web.stop()


def test_live_view_carries_on_after_a_coordinator_restart(stack_factory, page_factory):
    stack = start_with_doubles(stack_factory(), DOUBLE_UNITS="4", DOUBLE_UNIT_SECONDS="0.1")
    page = page_factory()
    page.goto(web_url(stack) + "/#/new")
    fill_form(page, "postgresql://app@127.0.0.1:5432/ledger", "postgresql://app@127.0.0.1:5432/ledger_new")
    page.click("#create-start")
    page.wait_for_selector("#approval:not([hidden])")
    wid = page.url.rsplit("/", 1)[1]
    stack.procs["coordinator"].kill9()
    page.wait_for_function("document.getElementById('live').textContent !== 'live'")
    stack.procs["coordinator"].start()
    # Approved elsewhere (the CLI, another browser): this page must show it without a reload.
    channel, stub = stack.coordinator_stub()
    with channel:
        stub.Approve(coordinator_pb2.ApproveRequest(id=wid, comment="from the CLI"), timeout=10)
    page.wait_for_selector("#m-phase[data-phase='COMPLETED']", timeout=30000)
    assert "approved: from the CLI" in page.inner_text("#log")
    assert page.inner_text("#log").count("waiting for approval") == 1  # nothing replayed twice
    assert page.js_errors == []


def test_two_thousand_tables_show_as_a_summary_the_running_and_failed_ones_and_a_filter(stack_factory, page_factory):
    stack = start_with_doubles(stack_factory(), DOUBLE_UNITS="2000", DOUBLE_UNIT_SECONDS="0")
    page = page_factory()
    page.goto(web_url(stack) + "/#/new")
    fill_form(page, "postgresql://app@127.0.0.1:5432/big", "postgresql://app@127.0.0.1:5432/big_new")
    page.click("#create-start")
    page.wait_for_selector("#approval:not([hidden])", timeout=60000)
    page.fill("#decision-comment", "go")
    page.click("#approve-btn")
    page.wait_for_selector("#m-phase[data-phase='COMPLETED']", timeout=120000)
    page.wait_for_function("document.querySelector('#p-percent').dataset.percent === '100'")
    # A summary, not 2,000 rows: when all are done, none is running or failed, so none is listed.
    assert "2,000" in page.inner_text("#p-shown") and page.locator("#p-tables .trow").count() == 0
    page.fill("#p-filter", "public.t1999")
    page.select_option("#p-show", "all")
    page.wait_for_function("document.querySelectorAll('#p-tables .trow').length === 1")
    assert "public.t1999" in page.inner_text("#p-tables")
    page.fill("#p-filter", "")
    page.wait_for_function("document.querySelectorAll('#p-tables .trow').length === 200")  # at most 200 rows
    assert "narrow the filter" in page.inner_text("#p-shown")
    assert page.js_errors == []
