"""A drift check as one self-contained HTML page (inline CSS, no scripts, no external assets),
rendered from the same JSON body the monitor task writes beside it. Drifted features come first
and are named in words, not only in colour."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f2f2f2}td.name{text-align:left}.drift{color:#a31515;font-weight:600}.ok{color:#17662b;font-weight:600}
.note{color:#8a5a00;font-weight:600}
"""


def _number(value: Any, fmt: str = "{:.4f}") -> str:
    return "&ndash;" if value is None else escape(fmt.format(value))


def _row(item: dict[str, Any]) -> str:
    css, word = ("drift", "drifted") if item.get("drifted") else ("ok", "stable")
    return (f"<tr><td class='name'>{escape(str(item.get('name')))}</td><td class='{css}'>{word}</td>"
            f"<td>{_number(item.get('psi'))}</td><td>{_number(item.get('ks_statistic'))}</td>"
            f"<td>{_number(item.get('ks_pvalue'), '{:.3g}')}</td><td>{int(item.get('rows') or 0)}</td>"
            f"<td>{_number(item.get('missing_share'), '{:.1%}')}</td>"
            f"<td>{_number(item.get('reference_missing_share'), '{:.1%}')}</td>"
            f"<td class='name'>{escape(str(item.get('why', '')))}</td></tr>")


def _retrain(body: dict[str, Any]) -> str:
    retrain = body.get("retrain") or {}
    claim = retrain.get("claim") or {}
    if not retrain.get("enabled"):
        return "Retraining on drift is off for this pipeline (monitor.drift.retrain: false)."
    if not body.get("drifted"):
        return "No retrain: the day did not drift."
    if claim.get("granted"):
        record = claim.get("record") or {}
        again = " (recorded earlier for this date; the trigger is repeated, not doubled)" if claim.get("repeated") \
            else ""
        return f"Retrain triggered: DAG {record.get('dag_id')}, run {record.get('run_id')}{again}."
    blocker = claim.get("blocked_by") or {}
    return (f"No retrain: ds={blocker.get('ds')} triggered one ({blocker.get('run_id')}) within the "
            f"{retrain.get('cooldown_days')}-day cooldown.")


def render_html(body: dict[str, Any]) -> str:
    """The page for one drift check: the verdict, the drifted features, every feature's numbers."""
    thresholds = body.get("thresholds") or {}
    drifted = body.get("drifted_features") or []
    features = sorted(body.get("features") or [], key=lambda f: (not f.get("drifted"), -(f.get("psi") or 0.0)))
    status = body.get("status")
    css = "drift" if body.get("drifted") else "note" if status == "too_few_rows" else "ok"
    verdict = {"drift": "DRIFT", "no_drift": "no drift", "too_few_rows": "no verdict (too few rows)"}.get(
        str(status), str(status))
    missing = body.get("missing_columns") or []
    prediction = body.get("predictions")
    baseline = ", ".join(body.get("prediction_baseline") or []) or "none"
    ks = thresholds.get("ks_pvalue")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Drift: {escape(str(body.get('pipeline')))} {escape(str(body.get('ds')))}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Drift check: {escape(str(body.get('pipeline')))}, ds={escape(str(body.get('ds')))}</h1>"
        f"<p>Model {escape(str(body.get('model')))} v{escape(str(body.get('model_version')))} against its training "
        f"data ({int(body.get('reference_rows') or 0)} rows); {int(body.get('rows') or 0)} rows scored; run "
        f"{escape(str(body.get('dag_run')))}.</p>"
        f"<p>Verdict: <span class='{css}'>{escape(verdict)}</span>. Drifted features: "
        f"<span class='drift'>{escape(', '.join(drifted)) if drifted else 'none'}</span>.</p>"
        f"<p>A feature drifts when PSI &ge; {escape(str(thresholds.get('psi')))}"
        + (f" and the KS p-value &lt; {escape(str(ks))}" if ks is not None else "")
        + f"; the day drifts with at least {int(body.get('min_drifted_features') or 1)} drifted feature(s)"
        + (" or drifted predictions" if body.get("predictions_flag") else "")
        + f"; fewer than {escape(str(thresholds.get('min_rows')))} rows give no verdict.</p>"
        + (f"<p class='drift'>Columns missing from the day's features: {escape(', '.join(missing))}</p>"
           if missing else "")
        + f"<p>{escape(_retrain(body))}</p>"
        + "<h2>Features</h2><table><tr><th>feature</th><th>verdict</th><th>PSI</th><th>KS statistic</th>"
          "<th>KS p-value</th><th>rows</th><th>missing</th><th>missing in training</th><th>why</th></tr>"
        + "".join(_row(f) for f in features) + "</table>"
        + "<h2>Predictions</h2>"
        + (f"<p>Compared with the same version's predictions of: {escape(baseline)}.</p><table><tr>"
           "<th>series</th><th>verdict</th><th>PSI</th><th>KS statistic</th><th>KS p-value</th><th>rows</th>"
           f"<th>missing</th><th>missing before</th><th>why</th></tr>{_row(prediction)}</table>"
           if prediction else "<p>Not compared: no earlier day scored by this model version has enough rows.</p>")
        + "</body></html>")
