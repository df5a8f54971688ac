"""Stage 8: live evaluation. Once the outcomes of a scored day have landed, join them to that
day's predictions and record how each model version did, in the lake and in MLflow.

On the night of D the outcomes of feature day D - delay_days are complete. The stage looks at
the `catchup_days` scored days ending there, so a day scored late or whose labels landed late
is evaluated on a later night. A day without predictions or without landed outcomes is skipped
and named, never failed; a day already evaluated from the same inputs is kept as it is.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from include.errors import LabelError, RegistryError
from operators.base import SkyliftOperator, date_window, partition_date

if TYPE_CHECKING:
    import pandas as pd

EPOCH = date(1970, 1, 1)
METRIC_PREFIX = "live_"  # MLflow metric names: live_auc, live_rmse, ... on the version's training run


class EvaluateOperator(SkyliftOperator):
    ui_color = "#e3ecf7"

    def __init__(self, *, model_name: str, predictions_dataset: str, labels_dataset: str, dataset: str,
                 label_column: str, key: list[str], task: str, as_of: str = "as_of", delay_days: int = 0,
                 catchup_days: int = 7, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.predictions_dataset = predictions_dataset
        self.labels_dataset = labels_dataset
        self.dataset = dataset
        self.label_column = label_column
        self.key = list(key)
        self.model_task = task
        self.as_of = as_of
        self.delay_days = delay_days
        self.catchup_days = catchup_days

    def execute(self, context: Any) -> dict[str, Any]:
        ds = partition_date(context)
        newest = (date.fromisoformat(ds) - timedelta(days=self.delay_days)).isoformat()
        arrivals = [d for d in self.lake.partitions("validated", self.labels_dataset) if d <= ds]
        evaluated, skipped = {}, {}
        for day in date_window(newest, self.catchup_days):
            outcome = self.evaluate_day(context, day, ds, arrivals)
            (evaluated if isinstance(outcome, dict) else skipped)[day] = outcome
        for day, reason in skipped.items():
            self.log.info("ds=%s not evaluated: %s", day, reason)
        if not evaluated:
            raise AirflowSkipException(f"no scored day up to {newest} has landed outcomes yet (outcomes land "
                                       f"{self.delay_days} day(s) after the features): "
                                       + "; ".join(f"{d}: {r}" for d, r in skipped.items()))
        return {"ds": ds, "evaluated": evaluated, "skipped": skipped,
                "partitions": {d: self.lake.partition_uri("evaluations", self.dataset, d) for d in evaluated}}

    def evaluate_day(self, context: Any, day: str, ds: str, arrivals: list[str]) -> dict[str, Any] | str:
        """The day's metrics per model version, or why the day cannot be evaluated yet."""
        predictions = self.lake.manifest("predictions", self.predictions_dataset, day)
        if predictions is None:
            return f"no predictions/{self.predictions_dataset} partition (the day was not scored)"
        joined, used = self.labelled_predictions(day, ds, arrivals)
        if joined.empty:
            return (f"its outcomes have not landed in validated/{self.labels_dataset} by {ds} (expected in the "
                    f"drop of {(date.fromisoformat(day) + timedelta(days=self.delay_days)).isoformat()})")
        inputs = [predictions.fingerprint, *(self.lake.require("validated", self.labels_dataset, d).fingerprint
                                            for d in used)]
        key = self.build_key(inputs, task=self.model_task, label=self.label_column)
        kept = self.unchanged(context, "evaluations", self.dataset, day, key)
        if kept is not None:
            return {"rows": kept.row_count, "metrics": kept.extra.get("metrics", {}), "reused": True}
        table = self.metrics_table(joined, day, ds, predictions.row_count)
        with self.lake.publish(
            "evaluations", self.dataset, day,
            run_id=context["ti"].run_id,
            inputs=[predictions.as_input(), *(self.lake.require("validated", self.labels_dataset, d).as_input()
                                              for d in used)],
            extra={"build_key": key, "evaluated_on": ds, "label_partitions": used,
                   "metrics": table.to_dict(orient="records")},
        ) as writer:
            import pyarrow as pa

            writer.write_table(pa.Table.from_pandas(table, preserve_index=False))
        self.log_live_metrics(table, day)
        self.log.info("evaluations/%s/ds=%s: %s", self.dataset, day, table.to_dict(orient="records"))
        return {"rows": len(joined), "metrics": table.to_dict(orient="records")}

    def labelled_predictions(self, day: str, ds: str, arrivals: list[str]) -> tuple[pd.DataFrame, list[str]]:
        """The day's predictions joined to their outcomes from the drops landed by ds, and those drops."""
        from include.labels import FEATURE_DATE, LabelPlan, point_in_time_join

        plan = LabelPlan(column=self.label_column, key=tuple(self.key), as_of=self.as_of,
                         delay_days=self.delay_days)
        frame = self.lake.read_table("predictions", self.predictions_dataset, day).to_pandas()
        drops = {d: self.lake.read_table("validated", self.labels_dataset, d).to_pandas() for d in arrivals
                 if d >= day}  # a drop from before the day cannot hold its outcomes
        try:
            joined = point_in_time_join({day: frame}, drops, plan, cutoff=ds)
        except LabelError as exc:
            raise LabelError(f"evaluating predictions/{self.predictions_dataset}/ds={day}: {exc}") from exc
        used = sorted(d for d, rows in drops.items()
                      if (rows[self.as_of].astype(str).str[:10] == day).any())
        return joined.drop(columns=[FEATURE_DATE]), used

    def metrics_table(self, joined: pd.DataFrame, day: str, ds: str, scored_rows: int) -> pd.DataFrame:
        """One row per model version that scored the day: its metrics on the rows with outcomes."""
        import numpy as np
        import pandas as pd

        from include.training.metrics import evaluate

        rows = []
        for version, group in joined.groupby("model_version", sort=True):
            y = group[self.label_column].to_numpy(dtype=np.float64)
            metrics = evaluate(self.model_task, y, group["prediction"].to_numpy(dtype=np.float64))
            rows.append({"ds": day, "model_name": self.model_name, "model_version": str(version),
                         "labelled_rows": len(group), "scored_rows": scored_rows, "evaluated_on": ds,
                         **{name: float(value) for name, value in metrics.items()}})
        return pd.DataFrame(rows)

    def log_live_metrics(self, table: pd.DataFrame, day: str) -> None:
        """A point per scored day on each version's training run: a series over days (step = days since 1970)."""
        import math
        from datetime import UTC, datetime

        from mlflow.exceptions import MlflowException

        client = self.mlflow_hook.client
        step = (date.fromisoformat(day) - EPOCH).days
        timestamp = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)
        for row in table.to_dict(orient="records"):
            try:
                run_id = client.get_model_version(self.model_name, row["model_version"]).run_id
            except MlflowException as exc:
                raise RegistryError(f"model {self.model_name} v{row['model_version']} scored ds={day} but is not "
                                    f"in the registry: {exc}") from exc
            for name, value in row.items():
                if isinstance(value, float) and math.isfinite(value) and name not in ("labelled_rows", "scored_rows"):
                    client.log_metric(run_id, f"{METRIC_PREFIX}{name}", value, timestamp=timestamp, step=step)
            client.log_metric(run_id, f"{METRIC_PREFIX}rows", float(row["labelled_rows"]), timestamp=timestamp,
                              step=step)
