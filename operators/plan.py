"""`skylift plan PIPELINE --date D`: what a run would do, without doing it.

The DAG is compiled exactly as Airflow would, and each task is described in run order: the lake
partitions it reads and writes, whether what it writes exists already (a stage keeps a partition
whose inputs and settings are unchanged; the plan says so instead of guessing), and for training
the operator's own preparation: the feature and label partitions, the reuse key, whether a
finished MLflow run would be reused, and the training pod as it would be submitted. Nothing is
written: no run, no partition, no MLflow run, no pod.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from operators.project import Project
from operators.runner import RunRequest, _guarded, add_location_options, parse_conf
from operators.runner import plan as checked_run


@dataclass(frozen=True)
class PlannedTask:
    task_id: str
    after: tuple[str, ...]
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunPlan:
    dag_id: str
    ds: str
    conf: dict[str, Any]
    tasks: tuple[PlannedTask, ...]

    def render(self) -> str:
        lines = [f"{self.dag_id} for {self.ds}" + (f" with conf {self.conf}" if self.conf else "") + ":"]
        for number, task in enumerate(self.tasks, 1):
            after = f"  (after {', '.join(task.after)})" if task.after else ""
            lines.append(f"{number:>2}. {task.task_id}{after}")
            lines += [f"      reads   {item}" for item in task.reads]
            lines += [f"      writes  {item}" for item in task.writes]
            for note in task.notes:
                first, *rest = note.splitlines()
                lines.append(f"      {first}")
                lines += [f"        {line}" for line in rest]
        return "\n".join(lines)


def plan_run(project: Project, pipeline: str, day: date, dag_name: str | None,
             conf: dict[str, Any] | None) -> RunPlan:
    from operators.spec.compiler import dags_from_spec_file
    from operators.spec.loader import load_spec

    spec_file, dag_id = checked_run(project, RunRequest(pipeline, dag_name, (day,), conf))
    spec = load_spec(spec_file)
    dag = dags_from_spec_file(spec_file)[dag_id]
    params = {name: param.value for name, param in dag.params.items()}
    params.update(conf or {})
    dag.params.validate()
    unknown = sorted(set(conf or {}) - set(dag.params))
    if unknown:
        from include.errors import SpecError

        raise SpecError(f"--conf has {unknown}, not parameters of {dag_id}; its parameters are {sorted(dag.params)}")
    ds = str(params.get("ds") or day.isoformat())
    planner = _Planner(spec, dag, ds, params)
    return RunPlan(dag_id, ds, dict(conf or {}), tuple(planner.task(t) for t in dag.topological_sort()))


class _Planner:
    def __init__(self, spec: Any, dag: Any, ds: str, params: dict[str, Any]) -> None:
        from operators.hooks.lake import LakeHook
        from operators.settings import Settings

        self.spec, self.dag, self.ds, self.params = spec, dag, ds, params
        self.settings = Settings.resolve()
        self.lake = LakeHook(self.settings.lake_root, self.settings.lake_conn_id).get_lake()
        self.building: set[str] = set()  # tasks whose output this run writes anew

    def task(self, task: Any) -> PlannedTask:
        after = tuple(sorted(task.upstream_task_ids))
        describe = getattr(self, f"_{type(task).__name__}", None)
        reads, writes, notes = describe(task) if describe else ((), (), ())
        return PlannedTask(task.task_id, after, tuple(reads), tuple(writes), tuple(notes))

    # ---- partitions ----
    def _partition(self, zone: str, dataset: str, ds: str | None = None) -> str:
        ds = ds or self.ds
        path = f"{self.lake.root}/{zone}/{dataset}/ds={ds}"
        manifest = self.lake.manifest(zone, dataset, ds)
        if manifest is None:
            return f"{path}  [not there yet: built]"
        if self.params.get("rebuild"):
            return f"{path}  [exists: rebuilt (rebuild=true)]"
        return f"{path}  [{_exists(manifest)}: kept if its inputs and settings are unchanged, else rebuilt]"

    def _built(self, task: Any, zone: str, dataset: str) -> str:
        """The task's output partition and what the run does with it, asked of the stage itself
        (`kept_output`: the build key it would compute now against the manifest's)."""
        verdict, builds = self._verdict(task, zone, dataset)
        if builds:
            self.building.add(task.task_id)
        return f"{self.lake.root}/{zone}/{dataset}/ds={self.ds}  [{verdict}]"

    def _verdict(self, task: Any, zone: str, dataset: str) -> tuple[str, bool]:
        """What the run does with the task's partition, and whether it writes it anew."""
        from include.errors import DamagedPartition

        try:
            manifest = self.lake.manifest(zone, dataset, self.ds)
        except DamagedPartition as exc:
            return f"damaged: rebuilt ({exc})", True
        if manifest is None:
            return "not there yet: built", True
        if self.params.get("rebuild"):
            return "exists: rebuilt (rebuild=true)", True
        changing = sorted(set(task.upstream_task_ids) & self.building)
        if changing:
            return f"{_exists(manifest)}: rebuilt unless {', '.join(changing)} leaves its inputs as they are", True
        try:
            with contextlib.redirect_stdout(sys.stderr):  # the stage's own log lines are no part of the plan
                kept = task.kept_output(self._context(task))
        except Exception as exc:  # noqa: BLE001 - what the task itself would raise
            return f"{_exists(manifest)}: cannot tell before the run: {type(exc).__name__}: {exc}", True
        if kept is not None:
            return f"{_exists(manifest)}: kept: same inputs and settings", False
        return f"{_exists(manifest)}: rebuilt: its inputs or settings changed", True

    def _present(self, zone: str, dataset: str, ds: str) -> str:
        there = self.lake.manifest(zone, dataset, ds) is not None
        return f"{self.lake.root}/{zone}/{dataset}/ds={ds}" + ("" if there else "  [missing]")

    def _window(self, days: int) -> list[str]:
        last = date.fromisoformat(self.ds)
        return [(last - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]

    # ---- one method per operator class ----
    def _DropSensor(self, task: Any):  # noqa: N802 - named after the operator class
        from operators.drops import render_drop_uri

        return [render_drop_uri(task.source_uri, self.ds, self.settings.drops_root)], [], [
            "waits until the drop is complete (" + ", ".join(
                f"{k}={v}" for k, v in task.completion.model_dump(exclude_defaults=True).items()) + ")"
            if task.completion.model_dump(exclude_defaults=True) else "waits until the drop has files"]

    def _SharedPartitionSensor(self, task: Any):  # noqa: N802
        shared = task.shared
        return [self._present(shared.zone, shared.dataset, self.ds)], [], [
            f"waits ({task.mode}, a look every {task.poke_interval:.0f}s, up to {task.timeout / 60:.0f} min) until "
            f"{shared.owned_by} has published it; read only, never written by {task.pipeline!r}"]

    def _IngestOperator(self, task: Any):  # noqa: N802
        from operators.drops import render_drop_uri

        return ([render_drop_uri(task.source_uri, self.ds, self.settings.drops_root), f"contract {task.schema_file}"],
                [self._built(task, "raw", task.dataset)], [])

    def _ValidateOperator(self, task: Any):  # noqa: N802
        return ([self._present("raw", task.dataset, self.ds), f"suite {task.suite_file}"],
                [self._built(task, "validated", task.dataset)],
                [f"on failure: {task.on_failure} (quarantine share at most {task.max_quarantine_share}); "
                 f"on an empty day: {task.on_empty}"])

    def _FeaturesOperator(self, task: Any):  # noqa: N802
        from include.feature_engine import choose_engine
        from operators.hooks.spark import DEFAULT_CONF, driver_address

        sources = task.sources or {task.source_dataset: task.source_dataset}
        window = self._window(task.lookback_days)
        manifests = {dataset: [m for d in window if (m := self.lake.manifest("validated", dataset, d)) is not None]
                     for dataset in sources.values()}
        reads = [f"{self.lake.root}/validated/{dataset}/ds={window[0]}..{window[-1]} "
                 f"({len(manifests[dataset])} of {len(window)} days there)" for dataset in sources.values()]
        rows = sum(m.row_count for found in manifests.values() for m in found)
        choice = choose_engine(task.engine, self.settings.spark_master, rows, task.duckdb_max_rows)
        conf = {**DEFAULT_CONF, **driver_address(self.settings.spark_master)}
        spark = "\n".join(f"{k} = {v}" for k, v in sorted(conf.items()))
        return reads, [self._built(task, "features", task.dataset)], [
            f"job {task.job}", f"engine {choice.engine} ({choice.reason}; the rows published now)",
            f"Spark master {self.settings.spark_master}, configuration:\n{spark}"]

    def _TrainModelOperator(self, task: Any):  # noqa: N802
        from operators.train_reuse import find_reusable

        notes = [f"MLflow experiment skylift/{task.pipeline} at {self.settings.mlflow_tracking_uri}",
                 f"{task.framework} {task.model_task}, target {task.target}, execution {task.execution}"]
        context = self._context(task)
        try:
            config, key, run = task.prepare(context, self.settings)
        except Exception as exc:  # noqa: BLE001 - what the task itself would raise, or skip with
            from airflow.sdk.exceptions import AirflowSkipException

            verdict = "skips (and so do register and deploy)" if isinstance(exc, AirflowSkipException) else \
                f"fails with {type(exc).__name__}"
            builder = self._builds_training_day(task, exc)
            if builder:
                verdict = (f"trains on {self.lake.root}/features/{task.dataset}/ds={self.ds}, which task {builder} "
                           "builds first in this run (plan again once it exists for the reuse key and the pod's "
                           "arguments); as the lake is now, training alone would fail")
            from operators.train import PodRun

            unprepared = PodRun(image=task.image or self.settings.training_image, arguments=(), gpu=task.gpu)
            return [], [], [*notes, f"{verdict}: {exc}", self._pod(task, context, unprepared)]
        reads = [f"{self.lake.root}/features/{task.dataset}/ds={d}" for d in config["dates"]]
        labels = config.get("labels")
        if labels:
            holdout = ", ".join(labels["holdout_dates"])
            reads.append(f"{self.lake.root}/validated/{labels['dataset']}/ds={','.join(labels['arrivals'])} "
                         f"(label drops landed by {labels['cutoff']}; holdout days {holdout})")
        notes.append(f"model parameters {config['params']}")
        notes.append(f"reuse key {key[:16]}…")
        if not task.reuse_unchanged:
            notes.append("trains a new model (a DAG run only by hand always trains)")
        else:
            from operators.hooks.mlflow import MlflowHook

            earlier = find_reusable(MlflowHook(self.settings.mlflow_tracking_uri).client, config["experiment"], key)
            notes.append(f"reuses finished MLflow run {earlier['run_id']} (same partitions, parameters and code)"
                         if earlier else "trains a new model (no finished MLflow run with this key)")
        notes.append(self._pod(task, context, run))
        return reads, [f"MLflow run in experiment {config['experiment']} (model artifact)"], notes

    def _builds_training_day(self, task: Any, exc: Exception) -> str | None:
        """The task of this run that writes the missing features day training needs, if that is why
        training cannot be prepared yet (a day trained on without labels, in the window or form's range)."""
        from include.errors import PartitionNotFound

        if not isinstance(exc, PartitionNotFound) or task.label_plan is not None:
            return None
        start, end = self.params.get("train_start"), self.params.get("train_end")
        if (start or end) and not (start or end) <= self.ds <= (end or self.ds):
            return None
        if self.lake.manifest("features", task.dataset, self.ds) is not None:
            return None
        for upstream in self.dag.get_task(task.task_id).get_flat_relatives(upstream=True):
            if type(upstream).__name__ == "FeaturesOperator" and upstream.dataset == task.dataset:
                return upstream.task_id
        return None

    def _pod(self, task: Any, context: dict[str, Any], run: Any) -> str:
        import yaml
        from kubernetes.client import ApiClient

        with contextlib.redirect_stdout(sys.stderr):  # its "Building pod ..." log line is no part of the plan
            pod = task.render_pod(context, run)
        body = ApiClient().sanitize_for_serialization(pod)
        where = "submitted to Kubernetes" if task.execution == "kubernetes" else \
            "not submitted: train.execution is local, the same command runs in a local process"
        return f"training pod ({where}):\n" + yaml.safe_dump(body, sort_keys=False).rstrip()

    def _context(self, task: Any) -> dict[str, Any]:
        from types import SimpleNamespace

        logical = datetime.fromisoformat(self.ds).replace(tzinfo=UTC)
        ti = SimpleNamespace(dag_id=self.dag.dag_id, task_id=task.task_id, run_id=f"plan__{self.ds}", try_number=1,
                             map_index=-1)
        return {"ti": ti, "task_instance": ti, "params": dict(self.params), "logical_date": logical, "task": task,
                "dag": self.dag, "ds": self.ds, "run_id": ti.run_id,
                "dag_run": SimpleNamespace(run_id=ti.run_id, conf={}, run_after=logical, logical_date=logical)}

    def _SearchPlanOperator(self, task: Any):  # noqa: N802
        search = task.search
        if not self.params.get("search"):
            return [], [], ["search off for this run: maps no trial, train trains once"]
        trials = int(self.params.get("search_trials") or search["trials"])
        return [], [f"an MLflow parent run in experiment skylift/{task.pipeline}, an Optuna study in "
                    f"{self.settings.search_storage}"], [
            f"{trials} trials over {sorted(search['space'])}, {search['parallelism']} at a time; the best by "
            f"{search['metric']} ({search['direction']}) goes on to register"]

    def _SearchTrainOperator(self, task: Any):  # noqa: N802
        if self.params.get("search"):
            return [], [], ["picks the best finished trial (child runs of the search's parent run) and hands its "
                            "result to register"]
        return self._TrainModelOperator(task)

    def _RegisterModelOperator(self, task: Any):  # noqa: N802
        return [f"the MLflow run of task {task.train_task_id}"], [f"a new version of registered model "
                                                                  f"{task.model_name} (alias challenger)"], []

    def _PromotionApprovalOperator(self, task: Any):  # noqa: N802
        who = ", ".join(task.approvers) or "any user allowed on the DAG"
        return ([f"the gate result of task {task.gate_task_id}"], [f"an audit event for {task.model_name}"],
                [f"asks {who} to approve a promotion the gate clears; no answer within {task.timeout_minutes} "
                 f"minutes decides {task.on_timeout}; reject skips deploy"])

    def _DeployModelOperator(self, task: Any):  # noqa: N802
        gate = {k: v for k, v in task.gate.items() if v is not None}
        if getattr(task, "mode", None) == "gate":
            return ([f"the version task {task.register_task_id} registers, and {task.model_name}@champion"],
                    [f"reports/{task.pipeline}_gate/ds={self.ds}; nothing moves until a person approves"],
                    [f"gate {gate}"])
        force = " (force_deploy: promoted whatever the gate says)" if self.params.get("force_deploy") else ""
        writes = [f"{task.model_name}@champion if the challenger passes the gate{force}"]
        if getattr(task, "mode", None) == "promote":
            writes = [f"{task.model_name}@champion once task {task.approval_task_id} approves the version "
                      f"task {task.gate_task_id} cleared"]
        serving = getattr(task, "serving", None)
        if serving is not None and serving.target == "kubernetes":
            from include.deploy.manifests import Release, object_name

            k8s = serving.kubernetes
            name = object_name(k8s, Release(task.pipeline, task.model_name, "", ""))
            writes.append(f"Deployment, Service{' and HPA' if k8s.autoscaling else ''} {k8s.namespace}/{name} serving "
                          "the champion, smoke-tested through the Service (put back with the alias if that fails)")
        elif serving is not None and serving.target == "local":
            writes.append(f"nothing more: checks that {serving.local_target.url} serves the champion like batch "
                          "scoring (the alias moves back if not)")
        return ([f"the version task {task.register_task_id} registers, and {task.model_name}@champion"],
                writes, [f"gate {gate}"])

    def _BatchScoreOperator(self, task: Any):  # noqa: N802
        return ([self._present("features", task.features_dataset, self.ds), f"model {task.model_name}@champion"],
                [self._partition("predictions", task.dataset)], [])

    def _EvaluateOperator(self, task: Any):  # noqa: N802
        scored = (date.fromisoformat(self.ds) - timedelta(days=task.delay_days)).isoformat()
        return ([self._present("predictions", task.predictions_dataset, scored),
                 self._present("validated", task.labels_dataset, self.ds)],
                [self._partition("evaluations", task.dataset, scored)],
                [f"live metrics of the predictions for {scored}, whose outcomes are complete on {self.ds}"])

    def _DriftMonitorOperator(self, task: Any):  # noqa: N802
        drift = task.drift
        ks = f" and KS p-value < {drift['ks_pvalue']}" if drift.get("ks_pvalue") is not None else ""
        notes = [f"a feature drifts at PSI >= {drift['psi_threshold']}{ks} against the scoring version's training "
                 f"reference; skipped when the day's predictions were only kept"]
        if task.retrain_dag_id:
            notes.append(f"a drifted day claims a run of {task.retrain_dag_id} (at most one per "
                         f"{drift['cooldown_days']} days of dates)")
        return ([self._present("features", task.features_dataset, self.ds),
                 self._present("predictions", task.predictions_dataset, self.ds)],
                [f"{self.lake.root}/reports/{task.pipeline}_drift/ds={self.ds}  [drift.json, drift.html]"], notes)

    def _RetrainOnDriftOperator(self, task: Any):  # noqa: N802
        return ([f"the retrain claim of task {task.monitor_task_id}"],
                [f"a run of {task.trigger_dag_id} for {self.ds}, only if that task claimed one"], [])

    def _CustomStageOperator(self, task: Any):  # noqa: N802
        return ([self._present(zone, dataset, self.ds) for zone, dataset in task.inputs],
                [self._partition(task.zone, task.dataset)],
                [f"custom stage {task.stage_name} from {task.stage_module}, config {task.config}"])


def command_plan(args: argparse.Namespace) -> int:
    def body(project: Project) -> int:
        found = plan_run(project, args.pipeline, args.date, args.dag, parse_conf(args.conf))
        print(found.render())
        return 0

    return _guarded(args, body)


def add_command(sub: Any) -> None:
    cmd = sub.add_parser("plan", help="what a run of a pipeline's DAG for one date would do, without doing it")
    cmd.add_argument("pipeline", help="the pipeline's name")
    cmd.add_argument("--date", type=date.fromisoformat, required=True, help="the partition date")
    cmd.add_argument("--dag", help="which of the spec's dags: (default: the first one)")
    cmd.add_argument("--conf", help="trigger parameters as JSON")
    add_location_options(cmd)
    cmd.set_defaults(func=command_plan)


def _exists(manifest: Any) -> str:
    return f"exists, {manifest.row_count} rows, built {manifest.created_at[:19]} by {manifest.run_id}"
