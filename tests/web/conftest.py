"""Web test fixtures: the stack with the web server, an httpx client, headless Chromium, screenshots."""
from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.stack import AGENTS, Stack

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def web_url(stack: Stack) -> str:
    return f"http://{stack.address('web')}"


def start_with_doubles(stack: Stack, **double_env: str) -> Stack:
    """Coordinator, web, and the coordinator tests' scripted stand-in agents (no database is touched)."""
    stack.start_doubles(**double_env)
    stack.start("coordinator", "web")
    return stack


def start_real(stack: Stack) -> Stack:
    """Coordinator, web and the four real agents."""
    stack.start(*AGENTS, "coordinator", "web")
    return stack


@pytest.fixture(scope="module")
def double_stack(tmp_path_factory, nats_url):
    """One stack with stand-in agents shared by a module's API tests (each test makes its own migrations)."""
    stack = Stack(tmp_path_factory.mktemp("webstack"), nats_url)
    try:
        start_with_doubles(stack, DOUBLE_UNITS="6", DOUBLE_UNIT_SECONDS="0.05")
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def client(double_stack):
    with httpx.Client(base_url=web_url(double_stack), timeout=20) as c:
        yield c


def wait_phase(client: httpx.Client, wid: str, phases: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        r = client.get("/api/workflow/status", params={"id": wid})
        assert r.status_code == 200, r.text
        last = r.json()
        if last["phase"] in phases:
            return last
        time.sleep(0.1)
    raise AssertionError(f"migration {wid} did not reach {phases} in {timeout}s; it is {last and last['phase']}: "
                         f"{last and last['error']}")


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class PageErrors(list):
    """JavaScript errors seen on the page; a test ends by asserting there were none."""


@pytest.fixture
def page_factory(chromium):
    contexts = []

    def make(width: int = 1280, height: int = 900):
        ctx = chromium.new_context(viewport={"width": width, "height": height})
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(20000)
        page.js_errors = PageErrors()
        page.on("pageerror", lambda err: page.js_errors.append(str(err)))
        return page

    try:
        yield make
    finally:
        for ctx in contexts:
            ctx.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar would otherwise sit mid-picture
    page.screenshot(path=str(path), full_page=True)
    return path
