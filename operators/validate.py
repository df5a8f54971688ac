"""Stage 2: validate the day's raw partition with a Great Expectations suite.

Outputs, all published atomically for the run's date:
- `reports/<dataset>`: the result JSON and the HTML report (always, also when validation fails);
- `validated/<dataset>`: the rows downstream stages may use; it exists only if validation passed;
- `quarantine/<dataset>`: rows set aside by the `quarantine` policy, each with its reasons.
"""

from __future__ import annotations

import json
from typing import Any

from include.errors import ValidationFailed
from operators.base import SkyliftOperator, file_digest, partition_date
from operators.links import REPORT_XCOM_KEY, ValidationReportLink
from operators.spec.loader import resolve_file


class ValidateOperator(SkyliftOperator):
    ui_color = "#fdf1d6"
    operator_extra_links = (ValidationReportLink(),)

    def __init__(self, *, suite_file: str, dataset: str, on_failure: str = "fail",
                 max_quarantine_share: float = 0.05, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite_file = suite_file
        self.dataset = dataset
        self.on_failure = on_failure
        self.max_quarantine_share = max_quarantine_share

    def execute(self, context: Any) -> dict[str, Any]:
        from include.validation import Suite, describe_quarantine, run_suite

        ds = partition_date(context)
        suite_path = resolve_file(self.suite_file)
        suite = Suite.from_file(suite_path, self.on_failure, self.max_quarantine_share)
        raw = self.lake.require("raw", self.dataset, ds)
        key = self.build_key([raw.fingerprint], suite=file_digest(suite_path), policy=self.on_failure,
                             max_share=self.max_quarantine_share)
        kept = self.unchanged(context, "validated", self.dataset, ds, key)
        if kept is not None:
            report = self.lake.file_uri("reports", self.dataset, ds, "validation.html")
            context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=report)
            return {"ds": ds, "status": kept.extra["status"], "rows": kept.row_count,
                    "quarantined": kept.extra["quarantined_rows"], "warnings": kept.extra["warnings"],
                    "report": report, "reused": True}
        table = self.lake.read_table("raw", self.dataset, ds)
        frame = table.to_pandas()
        outcome = run_suite(frame, suite, where=str(suite_path))
        share = len(outcome.quarantine) / max(len(frame), 1)
        if outcome.quarantine and share > suite.max_quarantine_share:
            outcome.failed.append(
                f"{len(outcome.quarantine)} of {len(frame)} rows ({share:.1%}) failed row checks, more than "
                f"max_quarantine_share={suite.max_quarantine_share:.1%} ({describe_quarantine(outcome)})"
            )
        report = self._publish_report(context, ds, outcome, raw)
        if outcome.failed:
            # Nothing downstream may use this date: withdraw what an earlier run published for it.
            # (Features built from the withdrawn partition are refused as stale when read.)
            self.withdraw("validated", self.dataset, ds)
            self.withdraw("quarantine", self.dataset, ds)
            raise ValidationFailed(
                f"validation of raw/{self.dataset}/ds={ds} failed: {'; '.join(outcome.failed)}. Report: {report}"
            )
        if outcome.warnings:
            self.log.warning("validation warnings for ds=%s: %s", ds, ", ".join(outcome.warnings))
        kept = self._publish_rows(context, ds, table.schema, frame, outcome, raw, key)
        return {"ds": ds, "status": outcome.status, "rows": kept, "quarantined": len(outcome.quarantine),
                "warnings": outcome.warnings, "report": report}

    def _publish_report(self, context: Any, ds: str, outcome: Any, raw: Any) -> str:
        summary = {"status": outcome.status, "failed": outcome.failed, "warnings": outcome.warnings,
                   "quarantined_rows": len(outcome.quarantine)}
        with self.publish("reports", self.dataset, ds, run_id=context["ti"].run_id,
                               inputs=[raw.as_input()], extra=summary) as writer:
            writer.write_bytes("validation.json", json.dumps(outcome.result, indent=2, default=str).encode())
            writer.write_bytes("validation.html", outcome.html.encode())
        uri = self.lake.file_uri("reports", self.dataset, ds, "validation.html")
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=uri)
        return uri

    def _publish_rows(self, context: Any, ds: str, schema: Any, frame: Any, outcome: Any, raw: Any,
                      key: str) -> int:
        import pandas as pd
        import pyarrow as pa

        bad = sorted(outcome.quarantine)
        good = frame.drop(index=bad) if bad else frame
        common = {"run_id": context["ti"].run_id, "inputs": [raw.as_input()]}
        if bad:
            rows = frame.loc[bad].copy()
            rows["_reasons"] = pd.Series({i: "; ".join(r) for i, r in outcome.quarantine.items()})
            with self.publish("quarantine", self.dataset, ds, **common) as writer:
                writer.write_table(pa.Table.from_pandas(rows, preserve_index=False))
            self.log.warning("quarantined %d row(s) of ds=%s", len(bad), ds)
        else:
            self.withdraw("quarantine", self.dataset, ds)
        extra = {"status": outcome.status, "warnings": outcome.warnings, "quarantined_rows": len(bad),
                 "build_key": key}
        with self.publish("validated", self.dataset, ds, extra=extra, **common) as writer:
            writer.write_table(pa.Table.from_pandas(good, schema=schema, preserve_index=False))
        return len(good)
