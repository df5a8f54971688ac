"""Fixtures for the browser tests: data in the stack to look at, Chromium, and a logged-in page.

The data fixtures share the session's `stack`, `landed` drops and `api` client (tests/conftest.py)
with the integration tests. The nightly run for END is the integration suite's too: the first suite
to ask triggers it, the other joins it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STACK_END
from tests.integration.airflow_api import AirflowApi

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path(os.environ.get("SKYLIFT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
END = STACK_END  # the day of the session's drops (the `landed` fixture)
# END's nightly, scheduled-style: the integration suite checks the same run (whichever suite runs
# first triggers it, the other joins it), so the session pays for END's night once.
NIGHTLY_LOGICAL_DATE = f"{END.isoformat()}T00:00:00Z"


def run_failure(api: AirflowApi, dag_id: str, run_id: str) -> str:
    return api.failure_report(dag_id, run_id)


class NightlyRun:
    """A `churn_nightly` run for END, triggered through REST; `wait()` returns its id once it succeeded."""

    def __init__(self, api: AirflowApi, run_id: str) -> None:
        self.api, self.run_id = api, run_id

    def wait(self, timeout: float = 600) -> str:
        state = self.api.wait_for_run("churn_nightly", self.run_id, timeout)
        assert state == "success", run_failure(self.api, "churn_nightly", self.run_id)
        return self.run_id


@pytest.fixture(scope="module")
def nightly(landed, api) -> NightlyRun:
    """END's nightly run on the landed drops, started (not awaited: the UI checks run meanwhile)."""
    api.wait_for_dag("churn_nightly")
    return NightlyRun(api, api.trigger_or_join("churn_nightly", NIGHTLY_LOGICAL_DATE))


@pytest.fixture(scope="module")
def nightly_run(nightly) -> str:
    """The id of a successful `churn_nightly` run for END (its extra links point at real things)."""
    return nightly.wait()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; a missing browser fails the tests, it never skips them."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"the playwright package is missing (pip install -e '.[dev]'): {exc}")
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium, or set SKYLIFT_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def admin_page(chromium, stack) -> Iterator[Any]:
    """A page logged in to the Airflow UI as admin through the simple auth manager's login form."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, base_url=stack.api_url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        page.goto("/")
        page.wait_for_url("**/auth/login**")  # not logged in: the UI sends us to the login page
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(stack.admin_password())
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)
        expect(page.get_by_role("link", name="Dags")).to_be_visible()
        assert any(c["name"] == "_token" for c in context.cookies()), "login set no _token cookie"
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def page(admin_page, nightly) -> Any:
    """`admin_page`, asked for with `nightly` so that the nightly run is already going while the first UI checks run."""
    return admin_page


def shot(page, name: str) -> None:
    """Screenshot the page once its finite CSS animations (a dialog fading in) have finished."""
    page.evaluate("""() => Promise.all(document.getAnimations()
        .filter(a => a.effect && a.effect.getComputedTiming().endTime !== Infinity)
        .map(a => a.finished.catch(() => null)))""")
    page.screenshot(path=str(ARTIFACTS / name))
