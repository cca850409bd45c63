"""Browser tests: Playwright (from PyPI) driving Debian's Chromium headless
(`/usr/bin/chromium`, never a downloaded browser) against a real `sluice serve` on an
embedded PostgreSQL. Screenshots of every page, light and dark, go under
SLUICE_TEST_ARTIFACTS (default: a temporary directory, printed at the end of the run)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("SLUICE_TEST_CHROMIUM", "/usr/bin/chromium")
_ARTIFACTS: list[Path] = []


def artifacts_dir() -> Path:
    if not _ARTIFACTS:
        chosen = os.environ.get("SLUICE_TEST_ARTIFACTS")
        path = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="sluice-artifacts-"))
        path.mkdir(parents=True, exist_ok=True)
        _ARTIFACTS.append(path)
    return _ARTIFACTS[0]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _ARTIFACTS:
        terminalreporter.write_line(f"browser test screenshots: {_ARTIFACTS[0]}")


# Module scope: Playwright's sync API keeps an asyncio loop running in this thread while it is
# open, and later tests call asyncio.run(); it must stop when the browser tests end.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright not installed (the test extra has it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        yield b
        b.close()
