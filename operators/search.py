"""Hyper-parameter search in an on-demand DAG: `search_plan` -> `train_trial` (mapped) -> `train`.

With `train.search` in the spec, an on-demand DAG's train stage is this group. Its trigger form's
`search` switch decides at run time:
- off: `search_plan` maps no trial and `train` trains once, exactly as without a search;
- on: `search_plan` opens an MLflow parent run and an Optuna study, and maps `search_trials` trial
  tasks (`parallelism` at a time per DAG run). Each trial claims a point from the study, trains it
  through the training operator's own path (a local process, or a pod with `execution: kubernetes`)
  as a child run of the parent (tag `mlflow.parentRunId`), and reports its metric to the study.
  `train` runs once every trial is done, failed ones included (`all_done`), reads the finished child
  runs from MLflow, picks the best and hands its result on, so register and the gate take over the
  chosen run as they take over a single training's. A killed trial loses only its own point.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from include.errors import TrainingError
from include.training import search as hyper_search
from operators.base import SkyliftOperator, partition_date
from operators.train import TrainModelOperator

if TYPE_CHECKING:
    from airflow.sdk import TaskGroup

    from operators.spec.models import PipelineSpec

PLAN_TASK = "search_plan"
TRIAL_TASK = "train_trial"
GROUP = "search"
PLAN_XCOM = "search_plan"  # search_plan's decision: {"enabled": false} or the plan (SearchPlan.as_dict)
ROLE_TAG = "skylift.search.role"  # "parent" on the search's run, "trial" on each trial's run
SEARCH_RUN_TAG = "skylift.search.dag_run_id"
TRIAL_TAG = "skylift.search.trial"  # the Optuna trial number
SLOT_TAG = "skylift.search.slot"  # the mapped task index
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the UI nests the trials under the parent
DS_TAG = "skylift.search.ds"  # the partition date, on the parent and on each trial


def search_config(spec: PipelineSpec) -> dict[str, Any]:
    """What the search tasks need from `train.search`, with the direction resolved from the metric."""
    from include.gate_metrics import METRICS

    search, train = spec.train.search, spec.train
    higher_is_better = METRICS[train.task].get(search.metric, True)
    return {
        "framework": train.framework,
        "space": {name: spec_range.model_dump() for name, spec_range in search.params.items()},
        "metric": search.metric,
        "direction": search.direction or ("maximize" if higher_is_better else "minimize"),
        "trials": search.trials,
        "parallelism": search.parallelism,
        "sampler": search.sampler,
        "seed": search.seed,
    }


def build_search(spec: PipelineSpec, arguments: dict[str, Any]) -> TaskGroup:
    """The train stage of an on-demand DAG with `train.search`; `arguments` are the train operator's.
    Task ids stay unprefixed, so `train` is still the task register takes over from."""
    from airflow.sdk import TaskGroup, XComArg

    config = search_config(spec)
    with TaskGroup(GROUP, prefix_group_id=False, tooltip="hyper-parameter search (trigger form: search)") as group:
        plan = SearchPlanOperator(task_id=PLAN_TASK, pipeline=spec.pipeline, search=config)
        trial_arguments = {**arguments, "task_id": TRIAL_TASK, "reuse_unchanged": False}
        trials = TrialTrainOperator.partial(
            **trial_arguments, plan_task_id=PLAN_TASK, max_active_tis_per_dagrun=config["parallelism"],
        ).expand(slot=XComArg(plan))  # search_plan returns the slots: [0, 1, ...], none when off
        # every trial done, failed or not: the pick reads what finished (it refuses a run with no plan)
        train = SearchTrainOperator(**arguments, plan_task_id=PLAN_TASK, trigger_rule="all_done")
        plan >> trials >> train
    return group


class SearchPlanOperator(SkyliftOperator):
    """Open this run's search: the MLflow parent run and the Optuna study; map the trial slots.

    Safe to retry: the parent run of this DAG run is found again by its tags, the study by its name.
    """

    ui_color = "#fdf1dc"

    def __init__(self, *, search: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.search = dict(search)

    def execute(self, context: Any) -> list[int]:
        params = context.get("params") or {}
        ti = context["ti"]
        if not params.get("search"):
            ti.xcom_push(key=PLAN_XCOM, value={"enabled": False})
            self.log.info("search is off for this run: train trains once with the spec's parameters")
            return []
        trials = int(params.get("search_trials") or self.search["trials"])
        # checked again at run time: the form may not change it, but a hand-edited serialized DAG could
        hyper_search.check_space(self.search["framework"], hyper_search.parse_space(self.search["space"]))
        experiment = f"skylift/{self.pipeline}"
        keys = ("framework", "space", "metric", "direction", "sampler", "seed")
        plan = hyper_search.SearchPlan(
            study_name=hyper_search.study_name(ti.dag_id, ti.run_id), storage=self.settings.search_storage,
            parent_run_id=self.parent_run(context, experiment, trials), experiment=experiment, trials=trials,
            **{k: self.search[k] for k in keys})
        hyper_search.open_study(plan)  # created here, so a storage problem fails before any trial
        self.log.info("searching %s over %s: %d trials, %d at a time, %s %s; parent MLflow run %s",
                      plan.framework, sorted(plan.space), trials, self.search["parallelism"], plan.direction,
                      plan.metric, plan.parent_run_id)
        ti.xcom_push(key=PLAN_XCOM, value={"enabled": True, **plan.as_dict()})
        return list(range(trials))

    def parent_run(self, context: Any, experiment: str, trials: int) -> str:
        """This DAG run's search parent run: found again on a retry, else created (left RUNNING until
        `train` has picked the best trial)."""
        from mlflow.entities import Param

        ti = context["ti"]
        client = self.mlflow_hook.client
        experiment_id = ensure_experiment(client, experiment, self.settings.mlflow_artifact_root)
        found = client.search_runs([experiment_id], filter_string=(
            f"tags.`{ROLE_TAG}` = 'parent' and tags.`{SEARCH_RUN_TAG}` = '{_quoted(ti.run_id)}'"), max_results=1)
        if found:
            return found[0].info.run_id
        run = client.create_run(experiment_id, run_name=f"{ti.dag_id}.{partition_date(context)}.search", tags={
            ROLE_TAG: "parent", SEARCH_RUN_TAG: ti.run_id, "skylift.pipeline": self.pipeline,
            "skylift.dag_id": ti.dag_id, DS_TAG: partition_date(context)})
        values = {"search.trials": trials, "search.parallelism": self.search["parallelism"],
                  "search.metric": self.search["metric"], "search.direction": self.search["direction"],
                  "search.sampler": self.search["sampler"], "search.space": json.dumps(self.search["space"])}
        client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in values.items()])
        return run.info.run_id


class TrialTrainOperator(TrainModelOperator):
    """One trial: a point from the study, trained by the training operator's own path as a child run of
    the search's parent run; its metric goes back to the study (a failure reports the trial failed).

    Mapped over `slot`. A retry of the same slot trains the point its earlier attempt claimed.
    """

    ui_color = "#fbe9d0"

    def __init__(self, *, slot: int, plan_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.slot = slot
        self.plan_task_id = plan_task_id
        self._claimed: hyper_search.ClaimedTrial | None = None
        self._plan: hyper_search.SearchPlan | None = None

    def execute(self, context: Any) -> dict[str, Any]:
        from operators.hooks.mlflow import MlflowHook
        from operators.settings import Settings

        settings = Settings.resolve()
        plan = self._plan = search_plan(context, self.plan_task_id)
        study = hyper_search.open_study(plan, seed_offset=int(self.slot))
        claimed = self._claimed = hyper_search.claim(study, plan, int(self.slot))
        self.log.info("trial %d (slot %d%s): %s", claimed.number, self.slot,
                      ", resumed from an earlier attempt" if claimed.resumed else "", claimed.params)
        mlflow_hook = MlflowHook(settings.mlflow_tracking_uri)
        try:
            config, _, run = self.prepare(context, settings)
            self.fail_stale_trial_runs(mlflow_hook, plan)
            if self.execution == "kubernetes":
                attempt = self.run_pod(context, mlflow_hook, config, run)  # may defer: trigger_reentry goes on
            else:
                attempt = self.run_locally(context, settings, run)
            result = self.collect(mlflow_hook, attempt)
        except Exception:
            hyper_search.record(study, claimed.number, None)
            raise
        return self.report(context, study, mlflow_hook, result)

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the triggerer (deferrable pod): the training operator's result, then the study."""
        plan = search_plan(context, self.plan_task_id)
        study = hyper_search.open_study(plan, seed_offset=int(self.slot))
        claimed = hyper_search.claim(study, plan, int(self.slot))  # the RUNNING trial this slot claimed
        try:
            result = super().trigger_reentry(context, event)
        except Exception:
            hyper_search.record(study, claimed.number, None)
            raise
        hyper_search.record(study, claimed.number, _metric(result, plan.metric))
        return result

    def report(self, context: Any, study: Any, mlflow_hook: Any, result: dict[str, Any]) -> dict[str, Any]:
        value = _metric(result, self._plan.metric)
        hyper_search.record(study, self._claimed.number, value)
        self.log.info("trial %d: %s = %s", self._claimed.number, self._plan.metric, value)
        return self.publish(context, mlflow_hook, result)

    def run_model_params(self, context: Any) -> dict[str, Any]:
        """The run's parameters with this trial's point over them, checked like any training's."""
        from include.errors import SpecError
        from include.training import params as hyper_parameters

        base = super().run_model_params(context)
        if self._claimed is None:
            return base
        try:
            return hyper_parameters.check(self.framework, {**base, **self._claimed.params})
        except ValueError as exc:
            raise SpecError(f"trial {self._claimed.number} point refused: {exc}") from exc

    def training_config(self, context: Any, settings: Any, dates: list[str]) -> dict[str, Any]:
        config = super().training_config(context, settings, dates)
        if self._claimed is not None and self._plan is not None:
            config["run_name"] = f"{config['run_name']}.trial-{self._claimed.number}"
            config["tags"].update({PARENT_TAG: self._plan.parent_run_id, ROLE_TAG: "trial",
                                   TRIAL_TAG: str(self._claimed.number), SLOT_TAG: str(self.slot)})
            # Not the training run's date tag: the training operator's clean-up of stale runs (by DAG run
            # and date, before a pod starts) would end the other trials running beside this one.
            config["tags"][DS_TAG] = config["tags"].pop("skylift.ds")
        return config

    def fail_stale_trial_runs(self, mlflow_hook: Any, plan: hyper_search.SearchPlan) -> None:
        """This slot's runs an earlier, killed attempt left RUNNING. (Not the training operator's own
        clean-up by DAG run and date: that would also end the parent and the other trials' runs.)"""
        client = mlflow_hook.client
        found = client.get_experiment_by_name(plan.experiment)
        if found is None:
            return
        stale = client.search_runs([found.experiment_id], filter_string=(
            f"tags.`{PARENT_TAG}` = '{plan.parent_run_id}' and tags.`{SLOT_TAG}` = '{int(self.slot)}' "
            "and attributes.status = 'RUNNING'"), max_results=50)
        for run in stale:
            self.log.warning("marking trial run %s FAILED: an earlier attempt of slot %d left it RUNNING",
                             run.info.run_id, self.slot)
            client.set_terminated(run.info.run_id, status="FAILED")


class SearchTrainOperator(TrainModelOperator):
    """The `train` task of a DAG that can search: with the search off, trains once (the training
    operator itself); with it on, picks the best finished trial and hands its result on."""

    def __init__(self, *, plan_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        decided = context["ti"].xcom_pull(task_ids=self.plan_task_id, key=PLAN_XCOM)
        if not decided:
            raise TrainingError(f"task {self.plan_task_id!r} did not finish: nothing was trained (see its log)")
        if not decided.get("enabled"):
            return super().execute(context)
        from operators.hooks.mlflow import MlflowHook
        from operators.settings import Settings

        plan = hyper_search.SearchPlan.from_dict(decided)
        mlflow_hook = MlflowHook(Settings.resolve().mlflow_tracking_uri)
        outcomes, failed = finished_trials(mlflow_hook.client, plan)
        chosen = hyper_search.best(outcomes, plan.direction)
        if chosen is None:
            close_parent(mlflow_hook.client, plan, None, outcomes, failed)
            raise TrainingError(f"no trial of the search finished with a {plan.metric} ({len(failed)} failed, "
                                f"{len(outcomes)} finished without it; parent MLflow run {plan.parent_run_id}): "
                                "see the train_trial tasks' logs")
        self.log.info("best of %d finished trial(s) (%d failed): trial %s, %s = %s, params %s", len(outcomes),
                      len(failed), chosen.number, plan.metric, chosen.value, chosen.params)
        result = trial_result(mlflow_hook.client, chosen.run_id)
        close_parent(mlflow_hook.client, plan, chosen, outcomes, failed)
        abandoned = hyper_search.fail_unfinished(hyper_search.open_study(plan))
        if abandoned:
            self.log.warning("trial(s) %s never reported (their tasks were killed): marked failed in the study",
                             abandoned)
        return self.publish(context, mlflow_hook, result)


# ---- MLflow side of the search (one home, used by the operators above) ----------------------------
def search_plan(context: Any, plan_task_id: str) -> hyper_search.SearchPlan:
    decided = context["ti"].xcom_pull(task_ids=plan_task_id, key=PLAN_XCOM)
    if not decided or not decided.get("enabled"):
        raise TrainingError(f"task {plan_task_id!r} left no search plan: a trial runs only in a searching run")
    return hyper_search.SearchPlan.from_dict(decided)


def ensure_experiment(client: Any, name: str, artifact_root: str | None) -> str:
    """The experiment's id, created (with Skylift's artifact location) when missing."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = f"{artifact_root.rstrip('/')}/{name}" if artifact_root else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created concurrently
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def child_runs(client: Any, plan: hyper_search.SearchPlan) -> list[Any]:
    """Every trial run of the search (the parent's children), oldest first."""
    found = client.get_experiment_by_name(plan.experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{plan.parent_run_id}'",
                              order_by=["attributes.start_time ASC"], max_results=5000)


def finished_trials(client: Any, plan: hyper_search.SearchPlan) -> tuple[list[hyper_search.TrialOutcome], list[str]]:
    """(the FINISHED trial runs with their metric, the run ids of the others: failed, killed)."""
    outcomes, others = [], []
    for run in child_runs(client, plan):
        if run.info.status != "FINISHED":
            others.append(run.info.run_id)
            continue
        number = run.data.tags.get(TRIAL_TAG)
        params = {k: v for k, v in run.data.params.items() if k in plan.space}
        outcomes.append(hyper_search.TrialOutcome(run_id=run.info.run_id, number=int(number) if number else None,
                                                  value=run.data.metrics.get(plan.metric), params=params))
    return outcomes, others


def trial_result(client: Any, run_id: str) -> dict[str, Any]:
    """The result document the entrypoint logged on a trial's run."""
    import tempfile
    from pathlib import Path

    from include.training.entrypoint import RESULT_ARTIFACT

    with tempfile.TemporaryDirectory(prefix="skylift-search-") as tmp:
        return json.loads(Path(client.download_artifacts(run_id, RESULT_ARTIFACT, tmp)).read_text())


def close_parent(client: Any, plan: hyper_search.SearchPlan, chosen: hyper_search.TrialOutcome | None,
                 outcomes: list[hyper_search.TrialOutcome], failed: list[str]) -> None:
    """Record the pick on the parent run and end it (FAILED when no trial could be picked)."""
    from mlflow.entities import Metric, RunTag

    tags = [RunTag("skylift.search.finished_trials", str(len(outcomes))),
            RunTag("skylift.search.failed_trials", str(len(failed)))]
    metrics = []
    if chosen is not None:
        tags += [RunTag("skylift.search.best_run_id", chosen.run_id),
                 RunTag("skylift.search.best_trial", str(chosen.number)),
                 RunTag("skylift.search.best_params", json.dumps(chosen.params, sort_keys=True)[:5000])]
        metrics.append(Metric(f"best_{plan.metric}", float(chosen.value), _now_ms(), 0))
    client.log_batch(plan.parent_run_id, metrics=metrics, tags=tags)
    client.set_terminated(plan.parent_run_id, status="FINISHED" if chosen is not None else "FAILED")


def _metric(result: dict[str, Any], metric: str) -> float | None:
    value = (result.get("metrics") or {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def _quoted(value: str) -> str:
    if "'" in value:
        raise TrainingError(f"run id {value!r} cannot be used in an MLflow search filter (it holds a quote)")
    return value


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
