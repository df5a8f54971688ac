"""The Airflow 3 UI as a user sees it, in Chromium, against the production stack on loopback.

A user logs in, finds the Skylift DAGs with their tags, reads a DAG's docs (the compiled spec),
triggers a retrain through the trigger form with a typed parameter and follows the run to
success, then opens a nightly run's task instances and follows their extra links: MLflow run,
model version and the Great Expectations report that the Skylift plugin serves.

Screenshots go to test-artifacts/browser/ (gitignored).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

import pytest

from tests.browser.conftest import END, run_failure, shot

pytestmark = pytest.mark.browser

DAG_TAGS = {
    "churn_nightly": {"skylift", "churn", "nightly", "xgboost", "classification"},
    "churn_retrain": {"skylift", "churn", "retrain", "xgboost", "classification"},
    "churn_score": {"skylift", "churn", "score", "xgboost", "classification"},
    "spend_nightly": {"skylift", "spend", "nightly", "pytorch", "regression"},
    "spend_retrain": {"skylift", "spend", "retrain", "pytorch", "regression"},
}
# Outcomes land 3 days late: from 11-18 the range holds four label-complete days to train and gate on.
FORM = {"max_depth": "3", "num_boost_round": "40", "train_start": "2026-11-18", "train_end": END.isoformat()}


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def dag_tags(page, dag_id: str) -> set[str]:
    """The tags a DAG's card in the list shows, including those behind its "+N more" popover."""
    header = page.locator(f"a[href='/dags/{dag_id}']").locator(
        "xpath=ancestor::*[.//a[starts-with(@href, '/dags?tags=')]][1]")
    tags = set(header.locator("a[href^='/dags?tags=']").all_inner_texts())
    more = header.get_by_role("button", name=re.compile(r"^\+\d+ more$"))
    if more.count():
        more.click()
        popover = page.get_by_role("dialog").filter(has_text=re.compile(r"All \d+ items"))
        expect(popover).to_be_visible()
        tags |= set(popover.locator("a[href^='/dags?tags=']").all_inner_texts())
        page.keyboard.press("Escape")
        expect(popover).to_be_hidden()
    return {tag.strip() for tag in tags}


def task_extra_links(page, dag_id: str, run_id: str, task_id: str) -> dict[str, str]:
    """Open a task instance, switch to its Details tab and return the extra links shown there."""
    page.goto(f"/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}")
    page.locator(f"a[href$='/tasks/{task_id}/details']").click()
    expect(page.get_by_role("heading", name="Extra Links")).to_be_visible()
    section = page.get_by_role("heading", name="Extra Links").locator("xpath=..")
    links = section.get_by_role("link")
    expect(links.first).to_be_visible()
    return {link.inner_text().strip(): link.get_attribute("href") for link in links.all()}


def test_dag_list_shows_the_skylift_dags_with_their_tags(page, api):
    for dag_id in DAG_TAGS:
        api.wait_for_dag(dag_id)
    page.goto("/dags")
    for dag_id in DAG_TAGS:
        expect(page.get_by_role("link", name=dag_id, exact=True)).to_be_visible()
    shot(page, "dag-list.png")
    for dag_id, expected in DAG_TAGS.items():
        assert dag_tags(page, dag_id) == expected, dag_id
    page.goto("/dags?tags=spend")  # a tag filters the list
    expect(page.get_by_role("link", name="spend_nightly", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="churn_nightly", exact=True)).to_have_count(0)


def test_dag_docs_show_the_compiled_spec(page):
    page.goto("/dags/churn_retrain")
    page.get_by_role("button", name="Dag Docs").click()
    docs = page.get_by_role("dialog").filter(has_text="Dag Documentation")
    expect(docs).to_contain_text("Stages: features → train → register → deploy")
    expect(docs).to_contain_text("lookback_days: 7")
    expect(docs).to_contain_text("pipeline: churn")
    shot(page, "dag-docs.png")
    page.keyboard.press("Escape")
    expect(docs).to_be_hidden()


def test_trigger_form_runs_a_retrain_with_typed_params(page, api, stack, nightly_run):
    page.goto("/dags/churn_retrain")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.get_by_role("dialog").filter(has_text="Trigger Dag - churn_retrain")
    expect(form.get_by_text("Run Parameters")).to_be_visible()
    for name, value in FORM.items():
        field = form.locator(f"input[name=element_{name}]")
        field.fill(value)
        field.blur()
        expect(field).to_have_value(value)
    page.set_viewport_size({"width": 1400, "height": 1600})  # the whole form in one screenshot
    form.locator("input[name=element_max_depth]").scroll_into_view_if_needed()
    shot(page, "trigger-form.png")
    page.set_viewport_size({"width": 1400, "height": 900})
    form.get_by_role("button", name="Advanced Options").click()  # the conf the form will send
    expect(form).to_contain_text(re.compile(r'"max_depth":\s*3\b'))
    expect(form).to_contain_text(re.compile(r'"train_start":\s*"2026-11-18"'))
    form.get_by_role("button", name="Trigger", exact=True).click()

    # The UI opens the new run's page.
    page.wait_for_url(re.compile(r"/dags/churn_retrain/runs/[^/?#]+$"))
    run_id = unquote(page.url.rsplit("/runs/", 1)[1])
    newest = api.get("/api/v2/dags/churn_retrain/dagRuns?order_by=-run_after&limit=1")["dag_runs"][0]
    assert newest["dag_run_id"] == run_id, (newest, run_id)
    assert newest["triggered_by"] == "ui" and newest["triggering_user_name"] == "admin", newest
    assert newest["conf"]["max_depth"] == 3 and newest["conf"]["num_boost_round"] == 40, newest["conf"]
    assert (newest["conf"]["train_start"], newest["conf"]["train_end"]) == ("2026-11-18", END.isoformat())

    state = api.wait_for_run("churn_retrain", run_id, timeout=420)
    assert state == "success", run_failure(api, "churn_retrain", run_id)
    badge = page.locator("h2", has_text=run_id).locator("xpath=..").get_by_test_id("state-badge")
    expect(badge).to_have_text("Success", timeout=60_000)  # the open page follows the run by itself
    tasks = page.get_by_role("row").filter(has=page.get_by_test_id("state-badge"))
    expect(tasks).to_have_count(4)
    expect(tasks.get_by_test_id("state-badge").filter(has_text="Success")).to_have_count(4)
    shot(page, "retrain-success.png")

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=stack.mlflow_uri, registry_uri=stack.mlflow_uri)
    experiment = client.get_experiment_by_name("skylift/churn")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`skylift.dag_run_id` = '{run_id}'")
    assert [r.data.params.get("max_depth") for r in runs] == ["3"], "the form's max_depth did not reach training"


def test_extra_links_lead_to_what_the_tasks_produced(page, stack, nightly_run):
    import mlflow

    mlflow_ui = re.escape(stack.mlflow_uri)
    train = task_extra_links(page, "churn_nightly", nightly_run, "train")
    assert set(train) == {"MLflow run"}, train
    found = re.fullmatch(rf"{mlflow_ui}/#/experiments/(\d+)/runs/([0-9a-f]{{32}})", train["MLflow run"])
    assert found, train
    shot(page, "extra-links.png")
    client = mlflow.MlflowClient(tracking_uri=stack.mlflow_uri, registry_uri=stack.mlflow_uri)
    run = client.get_run(found.group(2))
    assert run.info.experiment_id == found.group(1)
    assert run.data.tags["skylift.dag_run_id"] == nightly_run

    register = task_extra_links(page, "churn_nightly", nightly_run, "register")
    found = re.fullmatch(rf"{mlflow_ui}/#/models/churn/versions/(\d+)", register.get("Model version", ""))
    assert found, register
    assert client.get_model_version("churn", found.group(1)).run_id == run.info.run_id

    validate = task_extra_links(page, "churn_nightly", nightly_run, "validate_activity")
    report = validate.get("Validation report", "")
    assert re.fullmatch(r"/skylift/report\?uri=s3%3A%2F%2Fskylift-lake%2Freports%2Fcustomer_activity%2F"
                        rf"ds%3D{END.isoformat()}%2F[^/]+\.html", report), validate


def test_validation_report_is_served_to_logged_in_users_only(page, chromium, stack, nightly_run):
    href = task_extra_links(page, "churn_nightly", nightly_run, "validate_activity")["Validation report"]
    page.get_by_role("link", name="Validation report").click()  # same origin: opens in this tab
    page.wait_for_url(re.compile(r"/skylift/report\?uri="))
    expect(page.locator("body")).to_contain_text("Expectation Validation Result")
    expect(page.locator("body")).to_contain_text("Expectation Suite: customer_activity")
    expect(page.locator("body")).to_contain_text("Status: Succeeded")
    shot(page, "validation-report.png")

    assert page.request.get(href).status == 200
    anonymous = chromium.new_context(base_url=stack.api_url)  # no login cookie
    try:
        response = anonymous.request.get(href)
        assert response.status in (401, 403), (response.status, response.text()[:300])
        assert "Expectation" not in response.text()
    finally:
        anonymous.close()

    raw = stack.s3_client().list_objects_v2(Bucket="skylift-lake", Prefix="raw/")["Contents"][0]["Key"]
    for uri in (f"s3://skylift-lake/{raw}", f"s3://skylift-lake/reports/../{raw}"):
        response = page.request.get(f"/skylift/report?uri={quote(uri, safe='')}")
        assert response.status == 403, (uri, response.status, response.text()[:300])
    missing = page.request.get("/skylift/report?uri=" + quote("s3://skylift-lake/reports/none.html", safe=""))
    assert missing.status == 404, missing.status
