"""The dashboard in a real browser (issue 11): Debian's chromium driven by Playwright,
against a real daemon and web API on 127.0.0.1. Every request the page makes must go to
the daemon, and the page must run under its Content-Security-Policy without a console
error.

UPDATE_SCREENSHOT=1 writes the screenshot to docs/dashboard.png (committed, shown in the
README); otherwise it goes to the test's temporary directory."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from helpers import Pmd, Web, child

PY = sys.executable
KEY = "dashboard-key-0123456789"
READ_KEY = "dashboard-read-only-9876543210"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


class Watched:
    """A page whose requests and console errors are recorded."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.origin = origin
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def check(self) -> None:
        ws_origin = self.origin.replace("http", "ws", 1)
        foreign = [u for u in self.requests if not u.startswith((self.origin, ws_origin))]
        assert not foreign, f"requests to other hosts: {foreign}"
        # A refused key answers 401, which the browser reports; nothing else may show up.
        errors = [e for e in self.errors if "401" not in e]
        assert not errors, f"console errors: {errors}"


def open_page(browser: Browser, w: Web) -> Watched:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    watched = Watched(page, w.url)
    page.goto(w.url + "/")  # a browser at the root lands on the dashboard
    expect(page).to_have_url(w.url + "/ui/")
    return watched


def log_in(page: Page, key: str, *, accepted: bool = True) -> None:
    expect(page.locator("#login")).to_be_visible()
    page.fill("#key", key)
    page.click("#login-form button[type=submit]")
    if accepted:
        expect(page.locator("#main")).to_be_visible()


def row(page: Page, name: str) -> str:
    return f'#processes tbody tr[data-name="{name}"]'


def test_dashboard_live_table_actions_and_logs(
    pmd: Pmd, web: Callable[..., Web], browser: Browser, tmp_path: Path
) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "app", "--restart-delay", "700ms")
    pmd.start(child("ticker.py"), "--interpreter", PY, "-n", "tick", "--", "0.2")
    w = web("--api-key", KEY, "--read-only-api-key", READ_KEY)
    watched = open_page(browser, w)
    page = watched.page
    log_in(page, KEY)

    app = row(page, "app")
    expect(page.locator(f"{app} [data-field=status]")).to_have_text("online")
    expect(page.locator(row(page, "tick"))).to_be_visible()
    expect(page.locator("#system")).to_contain_text("processes 2 online / 2")

    # A crash shows up live: restarting, then online with a new PID.
    page.evaluate(
        """() => {
            window.statusSeen = [];
            new MutationObserver(() => {
                const cell = document.querySelector('tr[data-name="app"] [data-field=status]');
                if (cell) window.statusSeen.push(cell.textContent);
            }).observe(document.querySelector('#processes tbody'), {childList: true});
        }"""
    )
    old_pid = pmd.proc("app")["pid"]
    os.kill(old_pid, signal.SIGKILL)
    expect(page.locator(f"{app} [data-field=pid]")).not_to_have_text(str(old_pid), timeout=15000)
    expect(page.locator(f"{app} [data-field=status]")).to_have_text("online")
    seen: list[str] = page.evaluate("window.statusSeen")
    assert "restarting" in seen and seen.index("restarting") < len(seen) - 1 - seen[::-1].index(
        "online"
    ), seen
    expect(page.locator(f"{app} [data-field=restarts]")).to_have_text("1")

    # The restart button restarts: the PID changes.
    pid = pmd.proc("app")["pid"]
    pmd.seen_pids.add(pid)
    page.click(f"{app} button[data-action=restart]")
    expect(page.locator(f"{app} [data-field=pid]")).not_to_have_text(str(pid), timeout=15000)
    expect(page.locator(f"{app} [data-field=status]")).to_have_text("online")
    assert pmd.proc("app")["pid"] != pid

    # The detail panel tails the log live.
    page.click(f"{row(page, 'tick')} td:nth-child(2)")
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-title")).to_contain_text("tick")
    log = page.locator("#log div")
    expect(log.first).to_be_visible()
    count = log.count()
    expect(log).not_to_have_count(count, timeout=10000)  # new lines arrive
    last = log.last.text_content() or ""
    assert last.split()[0] == str(pmd.proc("tick")["pid"])

    screenshot = tmp_path / "dashboard.png"
    if os.environ.get("UPDATE_SCREENSHOT"):
        screenshot = DOCS / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)

    # Delete asks first: dismissed, nothing happens; accepted, the row goes.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click(f"{app} button[data-action=delete]")
    expect(page.locator(app)).to_be_visible()
    assert any(p["name"] == "app" for p in pmd.list())
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"{app} button[data-action=delete]")
    expect(page.locator(app)).to_have_count(0, timeout=15000)
    assert [p["name"] for p in pmd.list()] == ["tick"]
    watched.check()


def test_read_only_key_sees_no_actions_and_a_wrong_key_is_refused(
    pmd: Pmd, web: Callable[..., Web], browser: Browser
) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "app")
    w = web("--api-key", KEY, "--read-only-api-key", READ_KEY)
    watched = open_page(browser, w)
    page = watched.page
    log_in(page, "not-the-key", accepted=False)
    expect(page.locator("#login-error")).to_have_text("The key was refused.")
    expect(page.locator("#main")).to_be_hidden()
    log_in(page, READ_KEY)
    expect(page.locator(f"{row(page, 'app')} [data-field=status]")).to_have_text("online")
    expect(page.locator("#access")).to_have_text("read-only key")
    expect(page.locator("#processes button[data-action]")).to_have_count(0)
    page.click(f"{row(page, 'app')} td:nth-child(2)")
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-actions button")).to_have_count(0)
    # The key lives in this tab's sessionStorage, never in a URL or a cookie.
    assert page.evaluate("sessionStorage.getItem('pmdaemon-api-key')") == READ_KEY
    assert page.context.cookies() == []
    assert all(KEY not in u and READ_KEY not in u for u in watched.requests)
    watched.check()


def test_without_a_key_the_dashboard_opens_directly(
    pmd: Pmd, web: Callable[..., Web], browser: Browser
) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "app")
    w = web()  # loopback without a key: the API is open
    watched = open_page(browser, w)
    page = watched.page
    expect(page.locator("#main")).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator(f"{row(page, 'app')} button[data-action=stop]")).to_be_visible()
    page.click(f"{row(page, 'app')} button[data-action=stop]")
    expect(page.locator(f"{row(page, 'app')} [data-field=status]")).to_have_text("stopped")
    watched.check()


def test_a_ws_auth_server_still_streams_to_the_dashboard(
    pmd: Pmd, web: Callable[..., Web], browser: Browser
) -> None:
    """--ws-auth refuses a /ws handshake without the key: the page presents it as a
    subprotocol, so the table and the log tail stay live."""
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "app")
    pmd.start(child("ticker.py"), "--interpreter", PY, "-n", "tick", "--", "0.2")
    w = web("--api-key", KEY, "--ws-auth")
    watched = open_page(browser, w)
    page = watched.page
    log_in(page, KEY)
    expect(page.locator("#connection")).to_have_text("live")
    app = row(page, "app")
    old_pid = pmd.proc("app")["pid"]
    os.kill(old_pid, signal.SIGKILL)  # no action on the page: only the stream can tell it
    new_pid = pmd.wait_online("app", not_pid=old_pid)["pid"]
    expect(page.locator(f"{app} [data-field=pid]")).to_have_text(str(new_pid), timeout=15000)
    page.click(f"{row(page, 'tick')} td:nth-child(2)")
    log = page.locator("#log div")
    expect(log.first).to_be_visible()
    count = log.count()
    expect(log).not_to_have_count(count, timeout=10000)  # the subscription works too
    assert all(KEY not in u for u in watched.requests)  # the key is in no URL
    watched.check()
