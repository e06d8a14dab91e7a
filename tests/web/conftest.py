"""One real network and one headless Chromium, shared by every dashboard test of the session.

The network is a tests/integration cluster (4 validator processes and an observer, real LevelDB, real
sockets) that has run the scripted compliance year of tools/demo.py, plus a hostile organisation and a
hostile retirement: names, beneficiaries and reasons made of markup and quotes. The pages under test are the
observer's, as a regulator would open them.

Without Chromium the tests skip, unless CI is set: then they fail, so a CI machine that lost the browser
cannot pass quietly (`make test` installs it: see the Makefile's `browser` target).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.integration.cluster import running_cluster
from tests.web.browser import Browser, Page, find_chromium
from tests.web.webnet import SCREENSHOTS_ENV, WebNetwork, add_hostile_data
from tools.demo import run_demo


@pytest.fixture(scope="session")
def chromium() -> str:
    executable = find_chromium()
    if executable is None:
        message = "Chromium is not installed: `make test` installs Debian's chromium (see the Makefile)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return executable


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Browser]:
    instance = await Browser.launch(chromium, tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield instance
    finally:
        await instance.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    tab = await browser.new_page()
    try:
        yield tab
        assert tab.errors == [], f"uncaught exceptions in the page: {tab.errors}"
    finally:
        await tab.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get(SCREENSHOTS_ENV)
    return Path(configured) if configured else tmp_path_factory.mktemp("screenshots")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def network(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WebNetwork]:
    with running_cluster(tmp_path_factory.mktemp("web-network")) as cluster:
        url = cluster.api_url("observer-0")
        outcome = await run_demo(
            url, genesis=cluster.genesis, say=lambda _: None, reporting_window_s=8, surrender_window_s=14
        )
        hostile_receipt = await add_hostile_data(url)
        yield WebNetwork(cluster, url, outcome.period, outcome.receipt, hostile_receipt)
