"""The dashboard in a real browser (issue 11): Debian's chromium driven by Playwright,
against a real daemon and web API on 127.0.0.1. Every request the page makes must go to
the daemon, and the page must run under its Content-Security-Policy without a console
error.

UPDATE_SCREENSHOT=1 writes the screenshot to docs/dashboard.png (committed, shown in the
README); otherwise it goes to the test's temporary directory."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from helpers import Pmd, Web, child, wait_until

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

    def check(self, expected: tuple[str, ...] = ()) -> None:
        """No request to another host, and no console error but a refused key's 401 and
        those containing one of ``expected``."""
        ws_origin = self.origin.replace("http", "ws", 1)
        foreign = [u for u in self.requests if not u.startswith((self.origin, ws_origin))]
        assert not foreign, f"requests to other hosts: {foreign}"
        # A refused key answers 401, which the browser reports; nothing else may show up.
        errors = [e for e in self.errors if "401" not in e and not any(x in e for x in expected)]
        assert not errors, f"console errors: {errors}"


def open_page(browser: Browser, w: Web, width: int = 1280, height: int = 860) -> Watched:
    context = browser.new_context(viewport={"width": width, "height": height})
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


def cell(page: Page, name: str, field: str) -> str:
    return f"{row(page, name)} [data-field={field}]"


def test_stopped_and_errored_rows_show_a_dash_as_the_cli_does(
    pmd: Pmd, web: Callable[..., Web], browser: Browser, tmp_path: Path
) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "app")
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "halted")
    pmd.run("stop", "halted")
    pmd.run("start", str(tmp_path / "missing.py"), "-n", "broken", check=False)
    assert pmd.proc("broken")["status"] == "errored"
    w = web("--api-key", KEY)
    watched = open_page(browser, w)
    page = watched.page
    log_in(page, KEY)
    expect(page.locator(cell(page, "app", "cpu"))).to_have_text(re.compile(r"^\d+\.\d%$"))
    expect(page.locator(cell(page, "app", "memory"))).to_have_text(
        re.compile(r"^\d+(\.\d)? (B|KiB|MiB|GiB)$")
    )
    # Live metrics arrive (uptime moves on): what does not run still shows no figures.
    uptime = page.locator(cell(page, "app", "uptime"))
    expect(uptime).to_have_text(re.compile(r"^\d+[smhd]$"))
    expect(uptime).not_to_have_text(uptime.text_content() or "", timeout=15000)
    for name, status in (("halted", "stopped"), ("broken", "errored")):
        expect(page.locator(cell(page, name, "status"))).to_have_text(status)
        for field in ("pid", "cpu", "memory", "uptime"):
            expect(page.locator(cell(page, name, field))).to_have_text("-")
    watched.check()


def axis_bytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB"].index(unit)


def test_charts_have_a_label_and_a_scale(
    pmd: Pmd, web: Callable[..., Web], browser: Browser
) -> None:
    # 30 MiB, held: the memory chart's scale must reach above it.
    pmd.start(child("hog.py"), "--interpreter", PY, "-n", "hog", "--", "10", "30")
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "halted")
    pmd.run("stop", "halted")
    w = web("--api-key", KEY)
    watched = open_page(browser, w)
    page = watched.page
    log_in(page, KEY)
    page.click(f"{row(page, 'hog')} td:nth-child(2)")
    cpu, memory = page.locator("#cpu"), page.locator("#memory")
    expect(cpu.locator("figcaption")).to_contain_text("CPU % of one core, last 5 min")
    expect(memory.locator("figcaption")).to_contain_text("Memory RSS with its children")
    # A sample of 30 MiB or more has arrived over the stream.
    now = memory.locator("[data-axis=now]")
    expect(now).to_have_text(re.compile(r"^now \d+(\.\d)? MiB$"), timeout=15000)
    wait_until(
        lambda: axis_bytes(now.inner_text().removeprefix("now ")) >= 30 * 1024**2,
        timeout=15,
        what="a memory sample of 30 MiB",
    )
    top = axis_bytes(memory.locator("[data-axis=max]").inner_text())
    assert top >= axis_bytes(now.inner_text().removeprefix("now ")) >= 30 * 1024**2
    assert axis_bytes(memory.locator("[data-axis=mid]").inner_text()) == top / 2
    expect(memory.locator("[data-axis=zero]")).to_have_text(re.compile(r"^0 (B|KiB|MiB|GiB)$"))
    expect(cpu.locator("[data-axis=max]")).to_have_text(re.compile(r"^\d+%$"))
    expect(cpu.locator("[data-axis=zero]")).to_have_text("0%")
    expect(cpu.locator("[data-axis=now]")).to_have_text(re.compile(r"^now \d+\.\d%$"))
    cpu_top = float(cpu.locator("[data-axis=max]").inner_text().rstrip("%"))
    assert cpu_top >= float(cpu.locator("[data-axis=now]").inner_text()[4:].rstrip("%"))
    for figure in (cpu, memory):
        expect(figure.locator(".x-axis")).to_have_text(re.compile(r"^5 min ago\s*now$"))
        assert "scale 0 to" in (figure.locator("canvas").get_attribute("aria-label") or "")
        # Readable: real text, at least 11 px, inside its chart, no label over another.
        frame = figure.bounding_box()
        assert frame is not None
        ticks = []
        for label in figure.locator("figcaption, .y-axis span, .x-axis span").all():
            expect(label).to_be_visible()
            size = label.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
            assert size >= 11, size
            box = label.bounding_box()
            assert box is not None
            assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"]
            if label.get_attribute("data-axis") in ("max", "mid", "zero"):
                ticks.append(box)
        assert len(ticks) == 3
        assert all(a["y"] + a["height"] <= b["y"] for a, b in itertools.pairwise(ticks))
    # A process that does not run has no current value.
    page.click(f"{row(page, 'halted')} td:nth-child(2)")
    expect(page.locator("#detail-title")).to_contain_text("halted")
    expect(memory.locator("[data-axis=now]")).to_have_text("now -")
    expect(cpu.locator("[data-axis=now]")).to_have_text("now -")
    watched.check()


def test_the_header_wraps_cleanly_at_400_px(
    pmd: Pmd, web: Callable[..., Web], browser: Browser
) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "app")
    pmd.start(child("ticker.py"), "--interpreter", PY, "-n", "tick", "--", "0.5")
    w = web("--api-key", KEY)
    watched = open_page(browser, w, width=400, height=800)
    page = watched.page
    expect(page.locator("#connection")).to_be_visible()
    log_in(page, KEY)
    expect(page.locator("#system")).to_contain_text("processes 2 online / 2")
    page.click(f"{row(page, 'tick')} td:nth-child(2)")
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#log div").first).to_be_visible()
    # The page itself never scrolls sideways (the table scrolls in its own box).
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1] == 400, widths
    header = page.locator("header")
    assert header.evaluate("e => e.scrollWidth <= e.clientWidth")
    parts = [
        "header h1",
        "#connection",
        "#logout",
        *[f"#system [data-item={n}]" for n in ("host", "cpu", "memory", "load", "processes")],
    ]
    for selector in parts:
        part = page.locator(selector)
        expect(part).to_be_visible()
        box = part.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 400, selector
        # Each piece of the header is whole on one line (no value broken in two).
        assert part.evaluate("e => e.getClientRects().length") == 1, selector
        assert box["height"] < 30, (selector, box)
    # The name and the badge share the first line; the machine's figures come below.
    name, badge = (
        page.locator("header h1").bounding_box(),
        page.locator("#connection").bounding_box(),
    )
    system = page.locator("#system").bounding_box()
    assert name and badge and system
    assert abs((name["y"] + name["height"] / 2) - (badge["y"] + badge["height"] / 2)) < 8
    assert system["y"] >= name["y"] + name["height"] - 1
    watched.check()


def test_not_signed_in_is_told_apart_from_offline(
    pmd: Pmd, web: Callable[..., Web], browser: Browser
) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "app")
    w = web("--api-key", KEY)
    watched = open_page(browser, w)
    page = watched.page
    badge = page.locator("#connection")
    # No key yet, then a wrong one: the API answers, it wants a key.
    expect(page.locator("#login")).to_be_visible()
    expect(badge).to_have_text("not signed in")
    log_in(page, "not-the-key", accepted=False)
    expect(page.locator("#login-error")).to_have_text("The key was refused.")
    expect(badge).to_have_text("not signed in")
    log_in(page, KEY)
    expect(badge).to_have_text("live")
    # The web API goes away: offline, saying so, and the key is kept.
    port = w.url.rsplit(":", 1)[1]
    w.stop()
    expect(badge).to_have_text("offline", timeout=15000)
    expect(page.locator("#notice")).to_contain_text("The daemon's web API does not answer")
    expect(page.locator("#login")).to_be_hidden()
    # Back on the same port: live again with the same key, no sign-in asked for.
    web("--port", port, "--api-key", KEY)
    expect(badge).to_have_text("live", timeout=15000)
    expect(page.locator("#notice")).to_have_text("")
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator(cell(page, "app", "status"))).to_have_text("online")
    page.click("#logout")
    expect(badge).to_have_text("not signed in")
    # The browser reports the refused connections while the API was gone.
    watched.check(expected=("ERR_CONNECTION_REFUSED", "WebSocket connection to"))
