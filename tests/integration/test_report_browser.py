"""`evals report` opened in a real headless browser (Debian's chromium, driven by playwright): from file://, with the
network off, no console error, every chart drawn, the sample filters working, model outputs never run as script.

Needs chromium (`bash scripts/chromium.sh` installs it; `make test` does). Without it the test is skipped, naming that
command, except in CI (``CI`` set), where a missing browser fails it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.host.cli.app import main
from orchestrator.host.report.browser import flipped, read_all
from orchestrator.host.report.gather import gather
from tests.unit.report_runs import HOSTILE, MODELS, SAMPLES, TASKS, write_suite

CHROMIUM = os.environ.get("EVALS_CHROMIUM") or shutil.which("chromium") or ""
MISSING = "needs Debian's chromium: run `bash scripts/chromium.sh` (`make test` does)"


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (in CI this test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium (the machine's, never a downloaded one)."""
    if not CHROMIUM:
        _missing(MISSING)
    try:
        from playwright.sync_api import (  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
            sync_playwright,
        )
    except ImportError:
        _missing("needs the dev extra's playwright: pip install -e '.[host,dev]'")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_the_report_works_from_disk_with_no_network(browser: Any, tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite")
    path = tmp_path / "report.html"
    assert main(["report", str(suite), "-o", str(path)]) == 0
    context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1000})
    requests: list[str] = []

    def only_files(route: Any) -> None:
        requests.append(route.request.url)
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_files)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.goto(path.as_uri(), wait_until="load")

    assert requests == [path.as_uri()]  # the page asked for nothing else
    assert problems == [] and dialogs == []
    charts = page.locator("figure.chart svg")
    assert charts.count() == 3 * len(TASKS)  # scores, latency, tokens per task
    for index in range(charts.count()):
        box = charts.nth(index).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100

    first = page.locator("[data-browser]").first
    rows = first.locator("tbody tr")
    assert rows.count() == 50 and first.locator(".count").inner_text() == f"{SAMPLES} of {SAMPLES} samples, page 1 of 3"
    first.get_by_role("button", name="errors").click()
    assert rows.count() == 3 and rows.first.locator(".status.error").count() == 1
    first.get_by_role("button", name="unscored").click()
    assert rows.count() == 2
    first.get_by_role("button", name="flipped").click()
    task = sorted(TASKS)[0]
    expected = sum(map(flipped, read_all(gather([str(suite)]))[task].answers.values()))
    assert 0 < expected == rows.count()
    first.get_by_role("button", name="all").click()
    first.get_by_role("button", name="next").click()
    assert first.locator(".count").inner_text().endswith("page 2 of 3")

    first.get_by_role("button", name="all").click()
    assert rows.first.locator(".answer .text").first.inner_text() == HOSTILE  # shown as text, not run
    assert page.locator("img").count() == 0 and dialogs == []
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    assert [page.locator("table.scores th").nth(2 + i).inner_text() for i in range(2)] == list(MODELS)
    context.close()
