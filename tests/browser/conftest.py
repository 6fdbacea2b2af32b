"""Browser fixtures: the app as a subprocess on a free port, the system Chromium, one fresh page per test.

A failing test leaves a full-page screenshot in `test-artifacts/<test>.png`; the app's output is in
`test-artifacts/browser-app.log`. Without Chromium at /usr/bin/chromium every test here is skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.harness import ROOT, running_app
from tests.browser import ui

HERE = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "test-artifacts"
PAGE_KEY = pytest.StashKey["object"]()
SKIP_REASON = f"Chromium not found at {ui.CHROMIUM}: install the Debian package `chromium` (.ci/run does)"


def pytest_collection_modifyitems(config, items):
    if Path(ui.CHROMIUM).exists():
        return
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    page = item.stash.get(PAGE_KEY, None)
    if report.failed and page is not None and not page.is_closed():
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", item.name)
        try:
            page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True, timeout=15_000)
        except Exception as exc:  # a screenshot must never hide the real failure
            report.sections.append(("screenshot", f"could not save a screenshot: {exc}"))
    return report


@pytest.fixture(scope="session")
def app_url():
    with running_app(ARTIFACTS / "browser-app.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=ui.CHROMIUM, args=ui.CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(request, browser, app_url):
    """A fresh page (a new Gradio session) with the model ready, the first preview drawn and a fixed seed."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    request.addfinalizer(context.close)
    page = context.new_page()
    page.set_default_timeout(ui.EVENT_TIMEOUT_MS)
    request.node.stash[PAGE_KEY] = page
    ui.open_app(page, app_url)
    ui.fix_seed(page)
    return page
