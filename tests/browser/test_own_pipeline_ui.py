"""A new user's own pipeline in the Airflow UI of `skylift ui` (the embedded default), in Chromium:
log in with the printed login, read the DAG's docs (its compiled spec), open its trigger form.

Needs no production stack: `skylift ui` starts the Airflow services on SQLite itself.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import ARTIFACTS
from tests.e2e.own_project import write_project
from tests.e2e.ui_process import start_ui

pytestmark = pytest.mark.browser


def test_own_dag_docs_and_trigger_form(chromium, tmp_path):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ui = start_ui(write_project(tmp_path / "project"), tmp_path / "home")
    context = chromium.new_context(viewport={"width": 1400, "height": 900}, base_url=ui.url)
    context.set_default_timeout(30_000)
    try:
        page = context.new_page()
        page.goto("/")
        page.wait_for_url("**/auth/login**")
        page.get_by_label("Username").fill(ui.user)
        page.get_by_label("Password").fill(ui.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)

        for _ in range(60):  # the DAG processor parses the generated DAG files within seconds
            page.goto("/dags/parcels_retrain")
            if page.get_by_role("button", name="Trigger Dag").count():
                break
            page.wait_for_timeout(2000)
        page.get_by_role("button", name="Dag Docs").click()
        docs = page.get_by_role("dialog").filter(has_text="Dag Documentation")
        expect(docs).to_contain_text("Stages: features → train → register → deploy")
        expect(docs).to_contain_text("job: parcel_jobs.features:build")
        page.screenshot(path=str(ARTIFACTS / "own-dag-docs.png"))
        page.keyboard.press("Escape")
        expect(docs).to_be_hidden()

        page.get_by_role("button", name="Trigger Dag").click()
        form = page.get_by_role("dialog").filter(has_text="Trigger Dag - parcels_retrain")
        expect(form.get_by_text("Run Parameters")).to_be_visible()
        depth = form.locator("input[name=element_max_depth]")
        expect(depth).to_have_value("3")  # the spec's default
        depth.fill("2")
        depth.blur()
        expect(depth).to_have_value("2")
        expect(form.locator("input[name=element_train_end]")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "own-trigger-form.png"))
    finally:
        context.close()
        out, err = ui.stop()
    assert ui.proc.returncode == 0, out + err
