"""An online migration from the page in headless Chromium: the "Online" choice, the live change
stream while the source takes writes, and the "Cut over" button to a verified COMPLETED."""
from __future__ import annotations

import json

import pytest

from tests.online.test_online import SCHEMA, Writer, _digests, _leftovers
from tests.web.conftest import screenshot, start_real, web_url
from tests.web.pages import fill_form

pytestmark = pytest.mark.browser


def test_online_migration_streams_live_and_cuts_over_from_the_page(stack_factory, new_database15_logical, new_database18,
                                                                    page_factory):
    src, dst = new_database15_logical("web"), new_database18("web")
    src.execute(SCHEMA)
    stack = start_real(stack_factory())
    page = page_factory()
    page.on("dialog", lambda dialog: dialog.accept())  # the cutover button asks first
    page.goto(web_url(stack) + "/#/new")
    fill_form(page, src.url, dst.url, "online from the page")
    page.click("details.advanced summary")
    page.check("#f-online")
    with Writer(src.url) as writer:
        page.click("#create-start")
        page.wait_for_selector("#approval:not([hidden])", timeout=180000)
        page.click("#approve-btn")
        page.wait_for_selector("#m-phase[data-phase='SYNCING']", timeout=180000)
        page.wait_for_selector("#sync-card:not([hidden])")
        page.wait_for_function("document.querySelector('#sync-line').textContent.includes('changes applied')")
        first = page.inner_text("#sync-line")
        # Live: the line moves on by itself while the source's writes stream.
        page.wait_for_function(f"document.querySelector('#sync-line').textContent !== {json.dumps(first)}",
                               timeout=30000)
        assert page.is_visible("#cutover-btn")
        steps = page.eval_on_selector_all("#m-steps li", "els => els.map(e => e.dataset.state)")
        assert steps == ["done", "done", "done", "done", "active"], steps
        screenshot(page, "online-01-syncing")
        writer.stop()
    page.click("#cutover-btn")
    page.wait_for_selector("#m-phase[data-phase='COMPLETED']", timeout=180000)
    assert page.inner_text("#cutover-state").startswith("Cutover: verified")
    assert not page.is_visible("#cutover-btn")
    screenshot(page, "online-02-cut-over")
    assert _digests(src.url) == _digests(dst.url)
    assert _leftovers(src.url, dst.url) == []
    assert page.js_errors == []
