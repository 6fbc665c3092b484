"""Browser fixtures: Debian's Chromium (``apt-get install chromium``; ``make test`` installs
it when it runs as root) driven by Playwright's bundled driver. No browser is ever
downloaded: ``playwright install`` is not used. Under CI=true a missing Chromium fails
the browser tests; elsewhere they skip, saying why.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

REPOSITORY = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def chromium_executable() -> str:
    found = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).is_file():
        _unavailable("Chromium is not installed (apt-get install chromium, or make test as root)")
    return found


@pytest.fixture
def mode() -> str:
    """The browser tests run against the embedded service only."""
    return "embedded"


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """Where screenshots go: $TEST_ARTIFACTS_DIR (default test-artifacts/), one folder a test."""
    root = Path(os.environ.get("TEST_ARTIFACTS_DIR") or REPOSITORY / "test-artifacts")
    folder = root / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_executable()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


class PageProblems:
    """Console errors and uncaught exceptions of a page (a CSP violation is one)."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.messages.append(f"pageerror: {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.messages.append(f"console: {message.text}")


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    opened.set_default_timeout(30_000)
    try:
        yield opened
    finally:
        await context.close()
