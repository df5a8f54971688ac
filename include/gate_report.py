"""The deployment gate's result as one self-contained HTML page (inline CSS, no scripts, no
external assets), from the same JSON body the deploy task writes beside it."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f2f2f2}td.name{text-align:left}.ok{color:#17662b;font-weight:600}.fail{color:#a31515;font-weight:600}
"""


def _estimate(value: dict[str, Any] | None, signed: bool = False) -> str:
    if not value:
        return "&ndash;"
    if value.get("value") is None:
        return escape(f"not computable ({value.get('why_missing') or 'undefined'})")
    fmt = "{:+.4f}" if signed else "{:.4f}"
    text = fmt.format(value["value"])
    if value.get("low") is not None and value.get("high") is not None:
        text += f" [{fmt.format(value['low'])}, {fmt.format(value['high'])}]"
    return escape(text)


def render_html(body: dict[str, Any]) -> str:
    """The page for one gate run: the verdict, n, and per metric both models' values with intervals."""
    verdict = str(body.get("verdict", "?"))
    css = "ok" if body.get("promoted") else "fail"
    rows = []
    for metric in body.get("metrics", []):
        passed = "ok" if metric.get("passed") else "fail"
        rows.append(
            f"<tr><td class='name'>{escape(str(metric.get('metric')))}</td>"
            f"<td>{_estimate(metric.get('challenger'))}</td><td>{_estimate(metric.get('champion'))}</td>"
            f"<td>{_estimate(metric.get('gain'), signed=True)}</td>"
            f"<td class='{passed}'>{'pass' if metric.get('passed') else 'fail'}</td>"
            f"<td class='name'>{escape('; '.join(metric.get('reasons', [])))}</td></tr>")
    reasons = "".join(f"<li>{escape(str(r))}</li>" for r in body.get("reasons", []))
    model = escape(str(body.get("model")))
    champion = escape(str(body.get("champion_version") or "none"))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Gate: {model} v{escape(str(body.get('challenger_version')))}</title><style>{_STYLE}</style></head>"
        f"<body><h1>Deployment gate: {model}</h1>"
        f"<p>Challenger version {escape(str(body.get('challenger_version')))} against champion {champion}, "
        f"date {escape(str(body.get('ds')))}, run {escape(str(body.get('dag_run')))}.</p>"
        f"<p>Verdict: <span class='{css}'>{escape(verdict)}</span>; n = {int(body.get('n') or 0)} holdout rows; "
        f"{float(body.get('confidence') or 0):.0%} bootstrap intervals.</p>"
        "<table><tr><th>metric</th><th>challenger</th><th>champion</th><th>gain</th><th>verdict</th><th>why</th></tr>"
        f"{''.join(rows)}</table><h2>Why</h2><ul>{reasons}</ul></body></html>")
