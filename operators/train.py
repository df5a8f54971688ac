"""Stage 4: train a model in a GPU pod, or run the pod's exact command locally.

`TrainModelOperator` renders a pod that runs the training entrypoint (`python -m
include.training.entrypoint --config <json>`) with GPU limits, a node selector and tolerations,
and hands it to the cncf-kubernetes provider's `KubernetesPodOperator` (operators/training_pod.py),
built when the task runs, so that parsing a DAG never imports the provider's operator. With
`execution="local"` (the embedded default) it renders the same pod and runs that container's
command and environment as a subprocess instead, so the two modes cannot drift apart. The
entrypoint logs everything to MLflow, its result document included; the operator tags the run
with a fresh attempt id and reads the result back from MLflow after the pod succeeds (no XCom
sidecar, nothing read from the pod). In a pod, the provider's own code creates, re-attaches to
(after a lost worker), follows and deletes the pod, synchronously or from the triggerer
(`deferrable`); Skylift's post-processing runs after either.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from include.errors import PartitionNotFound, SpecError, TrainingError
from include.training import params as hyper_parameters
from operators import train_reuse
from operators.base import date_window, partition_date
from operators.hooks.lake import LakeHook
from operators.hooks.mlflow import MlflowHook
from operators.links import RUN_XCOM_KEY, MlflowRunLink
from operators.settings import Settings

if TYPE_CHECKING:
    from include.labels import LabelInput, LabelPlan
    from operators.training_pod import TrainingPodOperator

TAIL_LINES = 40
TRAINING_KEY_ANNOTATION = "skylift.io/training-key"


@dataclass(frozen=True)
class TrainingAttempt:
    """One launched training command: the MLflow experiment it logs to, the attempt id tagged on its run,
    and the reuse key of its inputs. Read back from the pod itself, so a re-attached pod is collected
    under the attempt that started it."""

    experiment: str
    attempt_id: str
    key: str

    @classmethod
    def of_pod(cls, pod: Any) -> TrainingAttempt:
        args = list(pod.spec.containers[0].args or [])
        try:
            config = json.loads(args[args.index("--config") + 1])
            key = (pod.metadata.annotations or {})[TRAINING_KEY_ANNOTATION]
            return cls(config["experiment"], config["tags"][train_reuse.ATTEMPT_TAG], key)
        except (ValueError, IndexError, KeyError) as exc:
            raise TrainingError(f"pod {pod.metadata.name} is not a Skylift training pod of this version (no "
                                f"--config with {train_reuse.ATTEMPT_TAG}, or no {TRAINING_KEY_ANNOTATION} "
                                "annotation); delete it and retry the task") from exc

    def as_dict(self) -> dict[str, str]:
        return {"experiment": self.experiment, "attempt_id": self.attempt_id, "key": self.key}


@dataclass(frozen=True)
class PodRun:
    """What one run adds to the spec's pod: the image, the entrypoint's arguments, the environment
    (non-secret settings only), annotations and the GPU count (the run's `gpu` param may differ)."""

    image: str | None  # None only when re-entering from the triggerer: the pod exists already
    arguments: tuple[str, ...]
    gpu: int
    environment: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


class TrainModelOperator(BaseOperator):
    ui_color = "#fde2e1"
    operator_extra_links = (MlflowRunLink(),)

    def __init__(
        self,
        *,
        pipeline: str,
        dataset: str,
        framework: str,
        target: str,
        task: str = "classification",
        key: list[str] | None = None,
        exclude: list[str] | None = None,
        model_params: dict[str, Any] | None = None,
        tunable: list[str] | None = None,
        window_days: int = 1,
        holdout_fraction: float = 0.2,
        execution: str = "local",
        gpu: int = 0,
        cpu: str = "2",
        memory: str = "4Gi",
        namespace: str = "default",
        node_selector: dict[str, str] | None = None,
        tolerations: list[dict[str, Any]] | None = None,
        env_from_secret: str | list[str] | None = None,
        service_account: str | None = None,
        image: str | None = None,
        image_pull_secrets: list[str] | None = None,
        gpu_type: str | None = None,
        gpu_type_label: str = "nvidia.com/gpu.product",
        cpu_limit: str | None = None,
        memory_limit: str | None = None,
        priority_class: str | None = None,
        shm_size: str | None = None,
        schedule_timeout: int = 600,
        startup_timeout: int = 600,
        deferrable: bool = False,
        pod_options: dict[str, Any] | None = None,
        reuse_unchanged: bool = True,
        label_plan: LabelPlan | None = None,
        labels_dataset: str | None = None,
        holdout_days: int = 3,
        **kwargs: Any,
    ) -> None:
        if execution not in ("local", "kubernetes"):
            raise SpecError(f"execution must be 'local' or 'kubernetes', got {execution!r}")
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.dataset = dataset
        self.framework = framework
        self.model_task = task
        self.target = target
        self.key = list(key or [])
        self.exclude = list(exclude or [])
        # `model_params`, never `params`: Airflow merges the DAG's trigger-form Params into an argument
        # of that name. `tunable`: this DAG's declared trigger params that override `model_params`.
        self.model_params = dict(model_params or {})
        self.tunable = list(tunable or [])
        self.window_days = window_days
        self.holdout_fraction = holdout_fraction
        self.execution = execution
        self.reuse_unchanged = reuse_unchanged
        # With labels: outcomes come from `validated/<labels_dataset>`, joined point in time.
        self.label_plan = label_plan
        self.labels_dataset = labels_dataset
        self.holdout_days = holdout_days
        # The pod, as plain values: its Kubernetes models are built when the task runs (training_pod.py).
        self.gpu, self.cpu, self.memory = gpu, cpu, memory
        self.cpu_limit, self.memory_limit = cpu_limit, memory_limit
        self.gpu_type, self.gpu_type_label = gpu_type, gpu_type_label
        self.namespace, self.image = namespace, image
        self.image_pull_secrets = list(image_pull_secrets or [])
        self.node_selector = dict(node_selector or {})
        self.tolerations = [dict(t) for t in tolerations or []]
        self.env_from_secret = [env_from_secret] if isinstance(env_from_secret, str) else list(env_from_secret or [])
        self.service_account, self.priority_class, self.shm_size = service_account, priority_class, shm_size
        self.schedule_timeout, self.startup_timeout = schedule_timeout, startup_timeout
        self.deferrable = deferrable
        # Further KubernetesPodOperator arguments (connection, polling intervals), passed as they are.
        self.pod_options = dict(pod_options or {})
        self._pod_operator: TrainingPodOperator | None = None
        self._process: subprocess.Popen | None = None

    # ---- the pod ---------------------------------------------------------------------------
    def pod_resources(self, gpu: int) -> dict[str, dict[str, str]]:
        """The container's requests and limits (limits default to the requests)."""
        limits = {"cpu": self.cpu_limit or self.cpu, "memory": self.memory_limit or self.memory}
        if gpu:
            limits["nvidia.com/gpu"] = str(gpu)
        return {"requests": {"cpu": self.cpu, "memory": self.memory}, "limits": limits}

    def pod_operator(self, run: PodRun | None) -> TrainingPodOperator:
        """The provider's pod operator for this run, kept for on_kill (built here, not at parse time)."""
        from operators.training_pod import training_pod_operator

        self._pod_operator = training_pod_operator(self, run)
        return self._pod_operator

    def render_pod(self, context: Any, run: PodRun) -> Any:
        """The pod this run would submit (V1Pod), as the provider renders it."""
        return self.pod_operator(run).build_pod_request_obj(context, dry_run=True)

    @property
    def pod(self) -> Any:
        """The live pod of the running attempt, once the provider created or found it."""
        return self._pod_operator.pod if self._pod_operator is not None else None

    def prepare(self, context: Any, settings: Settings) -> tuple[dict[str, Any], str, PodRun]:
        """What depends on the run: the training config, its reuse key (what the model would be built
        from) and the pod's image, arguments, environment and GPU count."""
        params = context.get("params") or {}
        gpu = int(params["gpu"]) if params.get("gpu") is not None else self.gpu
        lake_hook = LakeHook(settings.lake_root, settings.lake_conn_id)
        ds = partition_date(context)
        fingerprints = self.training_partitions(context, ds, lake_hook)
        config = self.training_config(context, settings, list(fingerprints))
        if self.label_plan is not None:
            label_input, label_fingerprints = self.label_partitions(ds, list(fingerprints), lake_hook)
            config["labels"] = label_input.as_config()
            # The key covers the outcomes too: a label drop that lands or changes trains anew.
            fingerprints = {**fingerprints, **{f"labels/{d}": fp for d, fp in label_fingerprints.items()}}
        # In a pod that asked for GPUs, no CUDA is an error; locally, use a GPU only if there is one.
        config["device"] = "cuda" if gpu and self.execution == "kubernetes" else "auto"
        image = self.image or settings.training_image
        # Unique per launch: the entrypoint's MLflow run carries it, and the result is looked up by it.
        config["tags"][train_reuse.ATTEMPT_TAG] = uuid.uuid4().hex
        code = self.code_identity(config, image)
        mlflow_env = MlflowHook(settings.mlflow_tracking_uri, settings.mlflow_artifact_root).environment()
        # Only non-secret settings go into the pod spec; keys come from `env_from_secret` there.
        public = {k: v for k, v in lake_hook.environment().items() if k in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
        key = train_reuse.training_key(config, list(fingerprints.values()), code)
        run = PodRun(image=image, arguments=("--config", json.dumps(config, sort_keys=True)), gpu=gpu,
                     environment={**mlflow_env, **public}, annotations={TRAINING_KEY_ANNOTATION: key})
        return config, key, run

    def code_identity(self, config: dict[str, Any], image: str) -> str | None:
        """What stands for the training code in the reuse key: in a pod the image's digest (or its tag,
        with a warning); locally None, i.e. the source files. Records the image on the run."""
        if self.execution != "kubernetes":
            return None
        code, pinned = train_reuse.image_identity(image)
        if not pinned:
            self.log.warning("training image %s has no digest: reuse of earlier models is keyed on the tag, so new "
                             "code pushed under the same tag would not retrain; pin it as "
                             "train.kubernetes.image: <repo>@sha256:<digest>", image)
        config["tags"]["skylift.image"] = image
        return code

    def training_config(self, context: Any, settings: Settings, dates: list[str]) -> dict[str, Any]:
        ti = context["ti"]
        ds = partition_date(context)
        params = self.run_model_params(context)
        return {
            "lake_root": settings.lake_root,
            "dataset": self.dataset,
            "dates": dates,
            "key": self.key,
            "target": self.target,
            "exclude": self.exclude,
            "framework": self.framework,
            "task": self.model_task,
            "params": params,
            "holdout_fraction": self.holdout_fraction,
            "experiment": f"skylift/{self.pipeline}",
            "run_name": f"{ti.dag_id}.{ds}",
            "tags": {"skylift.pipeline": self.pipeline, "skylift.dag_id": ti.dag_id, "skylift.dag_run_id": ti.run_id,
                     "skylift.ds": ds},
        }

    def run_model_params(self, context: Any) -> dict[str, Any]:
        """The spec's model parameters with this run's values of the DAG's tunable params, checked
        against the framework's parameter model before any pod or process starts."""
        run = context.get("params") or {}
        params = {**self.model_params, **{n: run[n] for n in self.tunable if run.get(n) is not None}}
        try:
            return hyper_parameters.check(self.framework, params)
        except ValueError as exc:
            raise SpecError(f"{self.framework} parameters of this run refused: {exc} (from the spec's "
                            f"train.params and the run's params {sorted(self.tunable)})") from exc

    def training_partitions(self, context: Any, ds: str, lake_hook: LakeHook) -> dict[str, str]:
        """Feature partitions to train on, date -> fingerprint: the trigger form's date range, else
        the window ending at ds."""
        params = context.get("params") or {}
        start, end = params.get("train_start"), params.get("train_end")
        if start or end:
            first, last = date.fromisoformat(start or end), date.fromisoformat(end or ds)
            if first > last:
                raise SpecError(f"train_start {first} is after train_end {last}")
            wanted = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        elif self.label_plan is not None:
            from include.labels import complete_days

            wanted = complete_days(ds, self.label_plan.delay_days, self.window_days)
        else:
            wanted = date_window(ds, self.window_days)
        if self.label_plan is not None:
            # Only days whose outcomes are complete on ds: nothing is learnt from a half-known day.
            wanted = [d for d in wanted if date.fromisoformat(d) + timedelta(days=self.label_plan.delay_days)
                      <= date.fromisoformat(ds)]
        lake = lake_hook.get_lake()
        dates = [d for d in wanted if lake.manifest("features", self.dataset, d) is not None]
        if self.label_plan is not None:
            dates = self.label_complete(lake, dates, ds)
        if self.label_plan is not None and len(dates) <= self.holdout_days:
            message = (f"{len(dates)} feature day(s) with complete labels on {ds} ({', '.join(dates) or 'none'}; "
                       f"outcomes land {self.label_plan.delay_days} day(s) late): training needs at least "
                       f"{self.holdout_days + 1}, the newest {self.holdout_days} of them held out for the gate")
            if self.reuse_unchanged:  # a scheduled night: nothing to learn from yet, which is normal early on
                raise AirflowSkipException(message)
            raise PartitionNotFound(message)
        if not dates:
            raise PartitionNotFound(f"no features/{self.dataset} partitions between {wanted[0]} and {wanted[-1]}")
        # never train on withdrawn data
        return {day: lake.require_fresh("features", self.dataset, day).fingerprint for day in dates}

    def label_complete(self, lake: Any, dates: list[str], ds: str) -> list[str]:
        """The days whose completing label drop has landed by ds; the others are left out, loudly."""
        from include.labels import completing_drop, labelled_days

        landed = [d for d in lake.partitions("validated", self.labels_dataset) if d <= ds]
        ready, waiting = labelled_days(dates, self.label_plan.delay_days, landed)
        for day in waiting:
            drop = completing_drop(day, self.label_plan.delay_days)
            self.log.warning("feature day %s is left out: its outcomes are complete in validated/%s/ds=%s, which "
                             "has not landed (run the pipeline for %s to ingest that drop)", day,
                             self.labels_dataset, drop, drop)
        return ready

    def label_partitions(self, ds: str, dates: list[str], lake_hook: LakeHook) -> tuple[LabelInput, dict[str, str]]:
        """The label drops landed by ds (never a later one: point in time) and the holdout days."""
        from include.labels import LabelInput, time_split

        lake = lake_hook.get_lake()
        arrivals = [d for d in lake.partitions("validated", self.labels_dataset) if d <= ds]
        if not arrivals:
            raise PartitionNotFound(f"no validated/{self.labels_dataset} partitions landed by {ds}: no outcomes "
                                    "to train on")
        fingerprints = {d: lake.require("validated", self.labels_dataset, d).fingerprint for d in arrivals}
        _, holdout = time_split(dates, self.holdout_days)
        found = LabelInput(dataset=self.labels_dataset, plan=self.label_plan, arrivals=tuple(arrivals), cutoff=ds,
                           holdout_dates=tuple(holdout))
        return found, fingerprints

    # ---- running ---------------------------------------------------------------------------
    def execute(self, context: Any) -> dict[str, Any]:
        settings = Settings.resolve()
        config, key, run = self.prepare(context, settings)
        mlflow_hook = MlflowHook(settings.mlflow_tracking_uri)
        result = self.earlier_result(context, mlflow_hook, config["experiment"], key)
        if result is None:
            if self.execution == "kubernetes":
                attempt = self.run_pod(context, mlflow_hook, config, run)  # may defer: then trigger_reentry goes on
            else:
                mlflow_hook.fail_stale_runs(config["experiment"], context["ti"].run_id, partition_date(context))
                attempt = self.run_locally(context, settings, run)
            result = self.collect(mlflow_hook, attempt)
        return self.publish(context, mlflow_hook, result)

    def run_pod(self, context: Any, mlflow_hook: MlflowHook, config: dict[str, Any], run: PodRun) -> TrainingAttempt:
        """Create the pod, or re-attach to this task's live one, and follow it to its end."""
        pod_operator = self.pod_operator(run)
        live = pod_operator.find_pod(self.namespace, context)
        if live is None or (live.status and live.status.phase in ("Succeeded", "Failed")):
            mlflow_hook.fail_stale_runs(config["experiment"], context["ti"].run_id, partition_date(context))
        else:  # its MLflow run is alive: leave it RUNNING
            self.log.info("re-attaching to training pod %s (%s)", live.metadata.name, live.status.phase)
        try:
            pod_operator.execute(context)  # deferrable: raises TaskDeferred, resumed by trigger_reentry below
        except Exception as exc:
            if pod_operator.launch_failure is not None:
                raise pod_operator.launch_failure from exc
            raise
        return TrainingAttempt.of_pod(pod_operator.pod)

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the triggerer: the provider's log and clean-up, then Skylift's result check, reuse
        tag and MLflow link, exactly as after a synchronous run."""
        from operators.training_pod import ATTEMPT_EVENT_KEY

        self.pod_operator(None).trigger_reentry(context, event)
        if ATTEMPT_EVENT_KEY not in event:
            raise TrainingError(f"the trigger's event for pod {event.get('name')} names no training attempt; "
                                "clear the task to train again")
        attempt = TrainingAttempt(**event[ATTEMPT_EVENT_KEY])
        mlflow_hook = MlflowHook(Settings.resolve().mlflow_tracking_uri)
        return self.publish(context, mlflow_hook, self.collect(mlflow_hook, attempt))

    def collect(self, mlflow_hook: MlflowHook, attempt: TrainingAttempt) -> dict[str, Any]:
        """The finished attempt's result from MLflow, then marked reusable under its key."""
        result = train_reuse.find_attempt(mlflow_hook.client, attempt.experiment, attempt.attempt_id)
        if "run_id" not in result:
            raise TrainingError(f"training attempt {attempt.attempt_id} logged a result without a run id: {result!r}")
        if not train_reuse.mark_reusable(mlflow_hook.client, result, attempt.key):
            self.log.info("the training result is too large to record; this run will not be reused")
        return result

    def publish(self, context: Any, mlflow_hook: MlflowHook, result: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.bases.xcom import BaseXCom

        ui = mlflow_hook.ui_base() or "http://127.0.0.1:5000"
        context["ti"].xcom_push(key=RUN_XCOM_KEY, value={"ui": ui, "experiment_id": result["experiment_id"],
                                                          "run_id": result["run_id"]})
        context["ti"].xcom_push(key=BaseXCom.XCOM_RETURN_KEY, value=result)  # do_xcom_push is off (no sidecar)
        self.log.info("trained %s on %s: %s", self.framework, result.get("device"), result.get("metrics"))
        return result

    def earlier_result(self, context: Any, mlflow_hook: MlflowHook, experiment: str, key: str) -> dict | None:
        """An earlier finished run built from the same inputs, unless this DAG always trains or
        the run asked for a rebuild."""
        if not self.reuse_unchanged or (context.get("params") or {}).get("rebuild"):
            return None
        result = train_reuse.find_reusable(mlflow_hook.client, experiment, key)
        if result is not None:
            self.log.info("features, settings and training code are unchanged since MLflow run %s; reusing it "
                          "(trigger with rebuild=true to train again)", result["run_id"])
        return result

    def run_locally(self, context: Any, settings: Settings, run: PodRun) -> TrainingAttempt:
        """Run the rendered pod's container command and environment as a subprocess."""
        pod = self.render_pod(context, run)
        container = pod.spec.containers[0]
        command = [*container.command, *container.args]
        if command[0] == "python":
            command[0] = sys.executable
        secrets = LakeHook(settings.lake_root, settings.lake_conn_id).environment()
        env = {**os.environ, **{e.name: e.value for e in container.env or []}, **secrets}
        env.pop("SKYLIFT_RESULT_PATH", None)
        self.log.info("running the training pod's command locally: %s", " ".join(command[:3]))
        self._stream(command, env)
        return TrainingAttempt.of_pod(pod)

    def _stream(self, command: list[str], env: dict[str, str]) -> None:
        tail: list[str] = []
        self._process = subprocess.Popen(  # noqa: S603 - argv list, no shell
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.rstrip()
            self.log.info("[train] %s", line)
            tail = [*tail[-TAIL_LINES + 1:], line]
        code = self._process.wait()
        self._process = None
        if code != 0:
            raise TrainingError(f"training exited with code {code}; last output:\n" + "\n".join(tail[-10:]))

    def on_kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
        if self._pod_operator is not None and self.execution == "kubernetes":
            self._pod_operator.on_kill()


def pod_arguments(resources: Any, kubernetes: Any) -> dict[str, Any]:
    """The operator's arguments from a spec's `train.resources` and `train.kubernetes`."""
    return {
        "gpu": resources.gpu, "gpu_type": resources.gpu_type, "gpu_type_label": resources.gpu_type_label,
        "cpu": resources.cpu, "cpu_limit": resources.cpu_limit,
        "memory": resources.memory, "memory_limit": resources.memory_limit,
        "namespace": kubernetes.namespace, "image": kubernetes.image,
        "image_pull_secrets": kubernetes.image_pull_secrets,
        "node_selector": kubernetes.node_selector,
        "tolerations": [t.model_dump(exclude_none=True) for t in kubernetes.tolerations],
        "env_from_secret": kubernetes.env_from_secret, "service_account": kubernetes.service_account,
        "priority_class": kubernetes.priority_class, "shm_size": kubernetes.shm_size,
        "schedule_timeout": kubernetes.schedule_timeout, "startup_timeout": kubernetes.startup_timeout,
        "deferrable": kubernetes.deferrable,
    }
