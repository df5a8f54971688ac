"""Stage 2: validate the day's raw partition with a Great Expectations suite.

Outputs, all published atomically for the run's date:
- `reports/<dataset>`: the result JSON and a self-contained HTML report naming the pipeline,
  dataset, date and DAG run (always, also when validation fails; see `include.validation_report`);
- `validated/<dataset>`: the rows downstream stages may use; it exists only if validation passed;
- `quarantine/<dataset>`: rows set aside by the `quarantine` policy, each with its reasons: rows
  that failed an expectation and rows the schema contract rejected at ingest (the raw partition's
  `rejected.jsonl`), stored as text (see `include.quarantine`).

A date that leaves no row to validate is not a success: it fails with the reason, or is skipped
(`on_empty="skip"`, an `AirflowSkipException`, so nothing downstream runs) where the spec asks.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from include.errors import ValidationFailed
from operators.base import SkyliftOperator, file_digest, partition_date
from operators.links import REPORT_XCOM_KEY, ValidationReportLink
from operators.spec.loader import resolve_file


class ValidateOperator(SkyliftOperator):
    ui_color = "#fdf1d6"
    operator_extra_links = (ValidationReportLink(),)

    def __init__(self, *, suite_file: str, dataset: str, on_failure: str = "fail",
                 max_quarantine_share: float = 0.05, on_empty: str = "fail", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite_file = suite_file
        self.dataset = dataset
        self.on_failure = on_failure
        self.max_quarantine_share = max_quarantine_share
        self.on_empty = on_empty

    def kept_output(self, context: Any) -> Any | None:
        ds = partition_date(context)
        raw = self.lake.require("raw", self.dataset, ds)
        return self.unchanged(context, "validated", self.dataset, ds, self._key(raw))

    def _key(self, raw: Any) -> str:
        """What the validated partition is built from: the raw partition, the suite and the policy."""
        return self.build_key([raw.fingerprint], suite=file_digest(resolve_file(self.suite_file)),
                              policy=self.on_failure, max_share=self.max_quarantine_share, on_empty=self.on_empty)

    def execute(self, context: Any) -> dict[str, Any]:
        from include.quarantine import describe_rejected
        from include.validation import Suite, describe_quarantine, run_suite

        ds = partition_date(context)
        suite_path = resolve_file(self.suite_file)
        suite = Suite.from_file(suite_path, self.on_failure, self.max_quarantine_share)
        raw = self.lake.require("raw", self.dataset, ds)
        key = self._key(raw)
        kept = self.unchanged(context, "validated", self.dataset, ds, key)
        if kept is not None:
            report = self.lake.file_uri("reports", self.dataset, ds, "validation.html")
            context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=report)
            return {"ds": ds, "status": kept.extra["status"], "rows": kept.row_count,
                    "quarantined": kept.extra["quarantined_rows"], "warnings": kept.extra["warnings"],
                    "report": report, "reused": True}
        table = self.lake.read_table("raw", self.dataset, ds)
        rejected = self._rejected(raw)
        frame = table.to_pandas()
        outcome = run_suite(frame, suite, where=str(suite_path))
        outcome.rejected = len(rejected)
        set_aside, total = len(outcome.quarantine) + len(rejected), len(frame) + len(rejected)
        why = "; ".join(filter(None, [describe_rejected(rejected), describe_quarantine(outcome)]))
        share = set_aside / max(total, 1)
        if set_aside and share > suite.max_quarantine_share:
            outcome.failed.append(
                f"{set_aside} of {total} rows ({share:.1%}) failed row checks, more than "
                f"max_quarantine_share={suite.max_quarantine_share:.1%} ({why})"
            )
        elif set_aside == total:
            outcome.empty = (f"no row of raw/{self.dataset}/ds={ds} passed: all {total} row(s) were set aside "
                             f"({why}), so validated/{self.dataset}/ds={ds} would be empty")
            if frame.empty:  # the contract rejected every row: table checks on no rows only restate that
                outcome.failed.clear()
            if self.on_empty != "skip" or outcome.failed:
                outcome.failed.append(outcome.empty + " (set validate.on_empty: skip to skip such a date instead)")
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
        kept = self._publish_rows(context, ds, table, frame, outcome, rejected, raw, key)
        if outcome.empty:
            raise AirflowSkipException(f"skipping ds={ds} and everything downstream (validate.on_empty: skip): "
                                       f"{outcome.empty}. Report: {report}")
        return {"ds": ds, "status": outcome.status, "rows": kept, "quarantined": set_aside,
                "warnings": outcome.warnings, "report": report}

    def _rejected(self, raw: Any) -> list[Any]:
        """The rows the contract rejected at ingest (quarantine policy), listed in the raw manifest."""
        from include.quarantine import REJECTED_FILE, decode_rejected

        if not any(f.name == REJECTED_FILE for f in raw.files):
            return []
        data = self.lake.read_bytes("raw", self.dataset, raw.ds, REJECTED_FILE)
        return decode_rejected(data, f"raw/{self.dataset}/ds={raw.ds}/{REJECTED_FILE}")

    def _publish_report(self, context: Any, ds: str, outcome: Any, raw: Any) -> str:
        from include.validation_report import ReportHeader, render_report

        ti = context["ti"]
        header = ReportHeader(pipeline=self.pipeline, dataset=self.dataset, ds=ds, dag_id=ti.dag_id,
                              run_id=ti.run_id, suite_file=self.suite_file)
        summary = {"status": outcome.status, "failed": outcome.failed, "warnings": outcome.warnings,
                   "quarantined_rows": len(outcome.quarantine) + outcome.rejected,
                   "rejected_by_contract": outcome.rejected}
        with self.publish("reports", self.dataset, ds, run_id=context["ti"].run_id,
                               inputs=[raw.as_input()], extra=summary) as writer:
            writer.write_bytes("validation.json", json.dumps(outcome.result, indent=2, default=str).encode())
            writer.write_bytes("validation.html", render_report(header, outcome).encode())
        uri = self.lake.file_uri("reports", self.dataset, ds, "validation.html")
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=uri)
        return uri

    def _publish_rows(self, context: Any, ds: str, table: Any, frame: Any, outcome: Any, rejected: list[Any],
                      raw: Any, key: str) -> int:
        import pyarrow as pa

        from include.quarantine import quarantine_table

        bad = sorted(outcome.quarantine)
        good = frame.drop(index=bad) if bad else frame
        common = {"run_id": context["ti"].run_id, "inputs": [raw.as_input()]}
        if bad or rejected:
            rows = quarantine_table(table, outcome.quarantine, rejected, f"raw/{self.dataset}/ds={ds}")
            with self.publish("quarantine", self.dataset, ds, **common) as writer:
                writer.write_table(rows)
            self.log.warning("quarantined %d row(s) of ds=%s (%d rejected by the contract at ingest)",
                             rows.num_rows, ds, len(rejected))
        else:
            self.withdraw("quarantine", self.dataset, ds)
        if outcome.empty:  # nothing to validate: downstream must not find a partition for the date
            self.withdraw("validated", self.dataset, ds)
            return 0
        extra = {"status": outcome.status, "warnings": outcome.warnings,
                 "quarantined_rows": len(bad) + len(rejected), "build_key": key}
        with self.publish("validated", self.dataset, ds, extra=extra, **common) as writer:
            writer.write_table(pa.Table.from_pandas(good, schema=table.schema, preserve_index=False))
        return len(good)
