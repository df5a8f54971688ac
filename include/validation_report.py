"""A validation run as one self-contained HTML page: inline CSS, no scripts, no external assets.

Great Expectations' Data Docs page loads its styles and scripts from the internet, so opened
offline (an air-gapped cluster, a file saved from the lake) its status column is blank. This
page is rendered from the validation result itself and says in words, not only in colour,
whether each expectation passed. Its header names the pipeline, dataset, date and DAG run.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from include.validation import FINITE_CHECK, Outcome

MAX_SHOWN = 10  # unexpected values listed per expectation
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;
vertical-align:top}th{background:#f2f2f2}dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}
dt{font-weight:600}.passed{color:#17662b;font-weight:600}.failed{color:#a31515;font-weight:600}
.warned,.quarantined,.empty{color:#8a5a00;font-weight:600}code{font-size:.9em}
"""


@dataclass(frozen=True)
class ReportHeader:
    """What the page is about: whose partition, which date, which run, which suite."""

    pipeline: str
    dataset: str
    ds: str
    dag_id: str
    run_id: str
    suite_file: str


def render_report(header: ReportHeader, outcome: Outcome) -> str:
    result = outcome.result
    stats = result.get("statistics") or {}
    suite = result.get("suite_name") or header.suite_file
    verdict = "Failed" if outcome.failed else "Succeeded"
    facts = [("Pipeline", header.pipeline), ("Dataset", header.dataset), ("Date", header.ds),
             ("DAG run", f"{header.dag_id} / {header.run_id}"), ("Suite file", header.suite_file),
             ("Expectations", f"{stats.get('successful_expectations', 0)} of "
                              f"{stats.get('evaluated_expectations', 0)} passed")]
    if outcome.quarantine or outcome.rejected:
        facts.append(("Rows set aside", f"{len(outcome.quarantine)} by expectations, {outcome.rejected} by the "
                                        "schema contract at ingest"))
    notes = [*(("failed", f) for f in outcome.failed), *(("warned", w) for w in outcome.warnings)]
    if outcome.empty:
        notes.append(("empty", outcome.empty))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Validation: {escape(header.pipeline)} {escape(header.dataset)} {escape(header.ds)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Expectation Validation Result</h1>"
        f"<p>Expectation Suite: <code>{escape(str(suite))}</code></p>"
        f"<p>Status: <span class='{'failed' if outcome.failed else 'passed'}'>{verdict}</span> "
        f"(<span class='{outcome.status}'>{outcome.status}</span>)</p>"
        f"<dl>{''.join(f'<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>' for k, v in facts)}</dl>"
        + (f"<ul>{''.join(f'<li class={kind!r}>{escape(text)}</li>' for kind, text in notes)}</ul>" if notes else "")
        + "<table><tr><th>status</th><th>expectation</th><th>arguments</th><th>observed</th></tr>"
        + "".join(_row(item, _policy_outcomes(outcome)) for item in result.get("results") or [])
        + "</table></body></html>"
    )


def _policy_outcomes(outcome: Outcome) -> dict[str, str]:
    """What the policy made of a failed rule, by label: a warning, or rows set aside."""
    found = {label: "warned" for label in outcome.warnings}
    found.update({label: "quarantined" for reasons in outcome.quarantine.values() for label in reasons})
    return found


def _row(item: dict[str, Any], policy_outcomes: dict[str, str]) -> str:
    config = item.get("expectation_config") or {}
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k not in ("column", "batch_id")}
    column = (config.get("kwargs") or {}).get("column")
    name = str(config.get("type") or config.get("expectation_type") or "?")
    label = f"{name}({column})" if column else name
    finite = bool((config.get("meta") or {}).get(FINITE_CHECK))
    exception = item.get("exception_info") or {}
    if exception.get("raised_exception"):
        status, observed = "failed", f"error: {exception.get('exception_message')}"
    else:
        status, observed = ("passed" if item.get("success") else "failed"), _observed(item.get("result") or {})
    if status == "failed" and not finite:
        status = policy_outcomes.get(label, status)
    if finite:  # reported under the `between` rule it accompanies
        label += " (no infinities: companion of the between rule)"
    arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return (f"<tr><td class='{status}'>{status}</td><td><code>{escape(label)}</code></td>"
            f"<td><code>{escape(arguments)}</code></td><td>{escape(observed)}</td></tr>")


def _observed(result: dict[str, Any]) -> str:
    if "observed_value" in result:
        return f"observed {result['observed_value']!r}"
    if "unexpected_count" not in result:
        return ""
    text = f"{result.get('unexpected_count')} of {result.get('element_count')} row(s) unexpected"
    values = (result.get("partial_unexpected_list") or result.get("unexpected_list") or [])[:MAX_SHOWN]
    return text + (f", e.g. {', '.join(repr(v) for v in values)}" if values else "")
