"""Extra links from a task instance to what it produced: MLflow run, model version, report.

Operators push the link targets to XCom in `execute`; `get_link` only reads them and never
raises (the UI calls it for every task instance, also for ones that never ran).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

log = logging.getLogger(__name__)

RUN_XCOM_KEY = "skylift_mlflow_run"  # {"ui": base url, "experiment_id": ..., "run_id": ...}
VERSION_XCOM_KEY = "skylift_model_version"  # {"ui": base url, "name": ..., "version": ...}
REPORT_XCOM_KEY = "skylift_validation_report"  # the report's lake URI
GATE_REPORT_XCOM_KEY = "skylift_gate_report"  # the deployment gate's HTML report, a lake URI
DRIFT_REPORT_XCOM_KEY = "skylift_drift_report"  # the drift check's HTML report, a lake URI


def _xcom(ti_key: Any, key: str) -> Any:
    try:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=key)
    except Exception:  # a link must never break the page
        log.debug("no %s for %s", key, ti_key, exc_info=True)
        return None


class MlflowRunLink(BaseOperatorLink):
    name = "MLflow run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        run = _xcom(ti_key, RUN_XCOM_KEY)
        if not run:
            return ""
        return f"{run['ui']}/#/experiments/{run['experiment_id']}/runs/{run['run_id']}"


class ModelVersionLink(BaseOperatorLink):
    name = "Model version"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        version = _xcom(ti_key, VERSION_XCOM_KEY)
        if not version:
            return ""
        return f"{version['ui']}/#/models/{quote(version['name'])}/versions/{version['version']}"


def _report_link(uri: Any) -> str:
    if not uri:
        return ""
    # The Skylift plugin serves lake files over HTTP; browsers refuse file:// links from a page.
    return f"/skylift/report?uri={quote(uri, safe='')}"


def report_url(uri: Any) -> str:
    """Where the UI shows a report the lake holds ("" for none): for links outside `get_link`, e.g.
    in an approval request's text."""
    return _report_link(uri)


class ValidationReportLink(BaseOperatorLink):
    name = "Validation report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return _report_link(_xcom(ti_key, REPORT_XCOM_KEY))


class GateReportLink(BaseOperatorLink):
    name = "Gate report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return _report_link(_xcom(ti_key, GATE_REPORT_XCOM_KEY))


class DriftReportLink(BaseOperatorLink):
    name = "Drift report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return _report_link(_xcom(ti_key, DRIFT_REPORT_XCOM_KEY))
