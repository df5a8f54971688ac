"""Skylift's Airflow plugin: operator extra links, and a small authenticated view of lake reports.

Browsers refuse `file://` links from a web page and S3 objects are private, so the
"Validation report" and "Gate report" links point at `/skylift/report?uri=...`, which this plugin serves from
the lake to logged-in Airflow users only, and only for files in the lake's `reports` zone.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from operators.links import DriftReportLink, GateReportLink, MlflowRunLink, ModelVersionLink, ValidationReportLink


def create_app():
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import HTMLResponse, Response

    app = FastAPI(title="Skylift", description="Reports from the Skylift lake")

    @app.get("/report", dependencies=[Depends(get_user)])
    def report(uri: str = Query(..., description="lake URI of a report file")) -> Response:
        from include.errors import LakeError

        try:
            body, media_type = read_report(uri)
        except PermissionError as exc:
            raise HTTPException(status_code=403, detail=str(exc)) from exc
        except (FileNotFoundError, LakeError) as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        return HTMLResponse(body) if media_type == "text/html" else Response(body, media_type=media_type)

    return app


def read_report(uri: str) -> tuple[bytes, str]:
    """The bytes of a report file, if `uri` lies in the `reports` zone of the configured lake."""
    import posixpath

    from operators.hooks.lake import LakeHook
    from operators.settings import Settings

    settings = Settings.resolve()
    lake = LakeHook(settings.lake_root, settings.lake_conn_id).get_lake()
    reports = lake.uri(f"{lake.base}/reports/")
    normalized = posixpath.normpath(uri.split("://", 1)[-1])
    if not uri.startswith(reports) or not lake.uri(normalized).startswith(reports) or ".." in uri:
        raise PermissionError(f"{uri} is not a report in this lake ({reports})")
    media = "text/html" if uri.endswith(".html") else "application/json" if uri.endswith(".json") else "text/plain"
    return lake.fs.cat_file(normalized if lake.is_local else uri), media


class SkyliftPlugin(AirflowPlugin):
    name = "skylift"
    # Registered here so the API server can rebuild the links of serialized operators.
    operator_extra_links = [MlflowRunLink(), ModelVersionLink(), ValidationReportLink(), GateReportLink(),
                            DriftReportLink()]

    @property
    def fastapi_apps(self):  # built lazily: the scheduler and workers never need it
        return [{"app": create_app(), "url_prefix": "/skylift", "name": "Skylift reports"}]
