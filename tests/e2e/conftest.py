"""End-to-end harness: the real `growth serve` in a subprocess, driven by Debian's headless Chromium.

The server is started the way a user starts it (`python -m growth.cli serve`) on an embedded SQLite
database in a temporary instance folder, with staff accounts made by `growth users create`.
Every page records the URLs it requests and the console errors it sees; a test fails if the page
reached anything but the local server (the product runs on intranets with no CDN) or logged an error.
A failing test leaves a screenshot in tests/e2e/artifacts/ and gets the server's log in its report.
"""

from __future__ import annotations

import gettext
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, Response, expect, sync_playwright

from tests.processes import product_env

CHROMIUM = os.environ.get("GROWTH_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
ARTIFACTS = E2E_DIR / "artifacts"
EN_CATALOG = ROOT / "growth" / "translations" / "en" / "LC_MESSAGES" / "messages.mo"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LOCAL_HOSTS = {"127.0.0.1"}

SERVER_LOG = pytest.StashKey[Path]()
SERVER_EXIT = pytest.StashKey[int]()
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@dataclass(frozen=True)
class Staff:
    """A staff account the server is started with."""

    email: str
    password: str
    name: str
    role: str


STAFF = {
    "marketer": Staff("marketer@example.com", "marketer-pass-1", "王小明", "marketer"),
    "agent": Staff("agent@example.com", "agent-pass-123", "李客服", "agent"),
    "admin": Staff("admin@example.com", "admin-pass-123", "张管理", "admin"),
    "approver": Staff("approver@example.com", "approver-pass-1", "赵审批", "approver"),
    "analyst": Staff("analyst@example.com", "analyst-pass-1", "钱分析", "analyst"),
}


# --- collection and reporting ---------------------------------------------------------------------
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/e2e as e2e and keep the database parametrisation away from it."""
    for item in items:
        if E2E_DIR not in Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.e2e)
        if "db_kind" in getattr(item, "fixturenames", ()):
            raise pytest.UsageError(f"{item.nodeid}: e2e tests drive the real server, not the `app` fixture")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item (for screenshots) and attach the server log to failures."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    log = item.config.stash.get(SERVER_LOG, None)
    if report.failed and log is not None and E2E_DIR in Path(item.path).resolve().parents:
        report.sections.append(("growth serve log", _tail(log)))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Show the server's log when it did not stop cleanly (failing tests carry it in their reports)."""
    code = config.stash.get(SERVER_EXIT, None)
    if code is not None and code not in (0, -signal.SIGTERM):
        terminalreporter.write_sep("-", f"growth serve exited {code}")
        terminalreporter.write_line(_tail(config.stash[SERVER_LOG]))


def _tail(path: Path, limit: int = 20_000) -> str:
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return text[-limit:]


# --- the server -----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _growth(args: list[str], env: dict[str, str]) -> None:
    """Run one `growth` command the way an operator would; fail the run with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "growth.cli", *args], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"`growth {' '.join(args)}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}")


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"`growth serve` exited {proc.returncode} before answering:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url + "/login", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"`growth serve` did not answer GET /login within {START_TIMEOUT:.0f} s:\n{_tail(log)}")
        time.sleep(0.2)  # polling a port that is not open yet: nothing to wait on but time


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="session")
def staff() -> dict[str, Staff]:
    """The staff accounts that exist on the server, by role."""
    return STAFF


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[str]:
    """Start `growth serve` on a fresh embedded database and yield its base URL."""
    instance = tmp_path_factory.mktemp("e2e-instance")
    env = product_env()
    env.update(
        GROWTH_INSTANCE_PATH=str(instance),
        GROWTH_SECRET_KEY="e2e-secret-key-not-for-production",
        GROWTH_WEBHOOK_SECRET=WEBHOOK_SECRET,
        GROWTH_CRM_JOB_SECONDS="3",  # the CRM rules make tasks for a test's new investors within seconds
        PYTHONUNBUFFERED="1",
    )
    # `users create` needs the schema; only `serve` would create it by itself.
    _growth(["db", "upgrade"], env)
    for person in STAFF.values():
        _growth(["users", "create", person.email, "--role", person.role, "--password", person.password,
                 "--name", person.name], env)

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = instance / "serve.log"
    request.config.stash[SERVER_LOG] = log
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "growth.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(url, proc, log)
        yield url
    finally:
        _stop(proc)
        request.config.stash[SERVER_EXIT] = proc.returncode


# --- the browser ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def playwright_runtime() -> Iterator[Playwright]:
    with sync_playwright() as runtime:
        yield runtime


@pytest.fixture(scope="session")
def browser(playwright_runtime: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless, with a throwaway profile; missing Chromium fails the run."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the e2e tests need Debian's browser "
            "(`apt-get install chromium`; never `playwright install`), or set GROWTH_E2E_CHROMIUM",
            pytrace=False,
        )
    instance = playwright_runtime.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield instance
    instance.close()


@dataclass
class PageLog:
    """What a page asked for and complained about while a test drove it."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_responses: list[tuple[int, str]] = field(default_factory=list)
    # Chromium asks for /favicon.ico on its own; the app has no icon yet (reported, cosmetic).
    allowed: set[tuple[int, str]] = field(default_factory=lambda: {(404, "/favicon.ico")})

    def allow(self, status: int, path: str) -> None:
        """Accept one error answer the test provokes on purpose (a 403 page, a 404 page)."""
        self.allowed.add((status, path))

    def foreign_requests(self) -> list[str]:
        """Return the requested URLs that are not on the local server (data: URLs are inline)."""
        return [u for u in self.requests if not u.startswith("data:") and urlsplit(u).hostname not in LOCAL_HOSTS]

    def unexpected_errors(self) -> list[str]:
        """Return the console errors, page errors and error answers that no test asked for."""
        answers = [f"HTTP {status} {url}" for status, url in self.error_responses
                   if (status, urlsplit(url).path) not in self.allowed]
        return answers + self.errors


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(browser: Browser, base_url: str, page_log: PageLog, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh Chinese-locale browser tab; checks afterwards that it stayed on 127.0.0.1 without errors."""
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=base_url,
                                  viewport={"width": 1280, "height": 800})
    context.set_default_timeout(15_000)
    context.on("request", lambda r: page_log.requests.append(r.url))
    tab = context.new_page()
    tab.on("console", lambda m: _on_console(page_log, m))
    tab.on("response", lambda r: _on_response(page_log, r))
    tab.on("pageerror", lambda exc: page_log.errors.append(f"page error: {exc}"))
    tab.on("requestfailed", lambda r: _on_failed(page_log, r))
    yield tab
    call = request.node.stash.get(REPORTS, {}).get("call")
    if call is not None and call.failed:
        _save_artifacts(tab, request.node.nodeid)
    context.close()
    foreign = page_log.foreign_requests()
    assert not foreign, f"the page loaded resources from outside 127.0.0.1 (no CDN on an intranet): {foreign}"
    unexpected = page_log.unexpected_errors()
    assert not unexpected, f"the browser reported errors: {unexpected}"


def _on_console(log: PageLog, message: ConsoleMessage) -> None:
    # Error answers are judged from the responses themselves (some are provoked on purpose).
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        log.errors.append(f"console: {message.text} ({message.location.get('url', '')})")


def _on_response(log: PageLog, response: Response) -> None:
    if response.status >= 400:
        log.error_responses.append((response.status, response.url))


def _on_failed(log: PageLog, req: Request) -> None:
    # A navigation replaced by the next one is aborted by design, not broken.
    if req.failure and "ERR_ABORTED" not in req.failure:
        log.errors.append(f"request failed: {req.method} {req.url}: {req.failure}")


def _save_artifacts(tab: Page, nodeid: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)
    try:
        tab.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
        (ARTIFACTS / f"{stem}.html").write_text(tab.content())
    except Exception as exc:  # a crashed page must not hide the test's own failure
        print(f"could not save artifacts for {nodeid}: {exc}", file=sys.stderr)


expect.set_options(timeout=10_000)  # a 2-core machine shared with other work: allow slow renders


# --- helpers as fixtures --------------------------------------------------------------------------
@pytest.fixture
def sign_in(page: Page) -> Callable[[Staff], None]:
    """Return a function that signs a staff member in through the login form and waits for home."""

    def _sign_in(person: Staff) -> None:
        page.goto("/login")
        page.get_by_label("邮箱").fill(person.email)
        page.get_by_label("密码").fill(person.password)
        page.locator("#login-submit").click()
        expect(page).to_have_url(re.compile(r"/$"))

    return _sign_in


@pytest.fixture(scope="session")
def english() -> gettext.NullTranslations | None:
    """Return the English catalog when it has been compiled, else None (it is added later)."""
    if not EN_CATALOG.exists():
        return None
    with EN_CATALOG.open("rb") as fp:
        return gettext.GNUTranslations(fp)
