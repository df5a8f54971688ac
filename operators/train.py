"""Stage 4: train a model in a GPU pod, or run the pod's exact command locally.

`TrainModelOperator` is a `KubernetesPodOperator`: it renders a pod that runs the training
entrypoint (`python -m include.training.entrypoint --config <json>`) with GPU limits, a node
selector and tolerations. With `execution="local"` (the embedded default) it renders the same
pod and runs that container's command and environment as a subprocess instead, so the two
modes cannot drift apart. The entrypoint logs everything to MLflow, its result document included;
the operator tags the run with a fresh attempt id and reads the result back from MLflow after the
pod succeeds (no XCom sidecar, nothing read from the pod). In a pod, the provider's own code
creates, re-attaches to (after a lost worker), follows and deletes the pod, synchronously or from
the triggerer (`deferrable`); Skylift's post-processing runs after either.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
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

ENTRYPOINT = ["python", "-m", "include.training.entrypoint"]
TAIL_LINES = 40
TRAINING_KEY_ANNOTATION = "skylift.io/training-key"
ATTEMPT_EVENT_KEY = "skylift_attempt"  # the attempt rides along in the trigger's event
SHM_VOLUME = "dshm"
# What a FailedScheduling message says -> the spec key that changes it.
UNSCHEDULABLE_HINTS = (
    ("Insufficient nvidia.com/gpu", "train.resources.gpu (or the run's gpu param)"),
    ("Insufficient cpu", "train.resources.cpu"),
    ("Insufficient memory", "train.resources.memory"),
    ("node affinity/selector", "train.kubernetes.node_selector (or train.resources.gpu_type)"),
    ("untolerated taint", "train.kubernetes.tolerations"),
)


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


class TrainModelOperator(KubernetesPodOperator):
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
        tolerations: list[dict[str, str]] | None = None,
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
        reuse_unchanged: bool = True,
        label_plan: LabelPlan | None = None,
        labels_dataset: str | None = None,
        holdout_days: int = 3,
        **kwargs: Any,
    ) -> None:
        from kubernetes.client import models as k8s

        if execution not in ("local", "kubernetes"):
            raise SpecError(f"execution must be 'local' or 'kubernetes', got {execution!r}")
        secrets = [env_from_secret] if isinstance(env_from_secret, str) else list(env_from_secret or [])
        # Each model otherwise builds its own client Configuration (logger set-up included) at parse time.
        config = {"local_vars_configuration": _models_configuration()}
        super().__init__(
            name=f"{pipeline}-train".replace("_", "-"),
            namespace=namespace,
            image=image,
            image_pull_secrets=[k8s.V1LocalObjectReference(name=n, **config) for n in image_pull_secrets or []],
            cmds=list(ENTRYPOINT),
            arguments=[],
            node_selector=node_selector or {},
            tolerations=[k8s.V1Toleration(**t, **config) for t in (tolerations or [])],
            env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=n, **config), **config)
                      for n in secrets],
            service_account_name=service_account,
            priority_class_name=priority_class,
            volumes=[k8s.V1Volume(name=SHM_VOLUME, empty_dir=k8s.V1EmptyDirVolumeSource(
                medium="Memory", size_limit=shm_size, **config), **config)] if shm_size else [],
            volume_mounts=[k8s.V1VolumeMount(name=SHM_VOLUME, mount_path="/dev/shm", **config)] if shm_size else [],
            schedule_timeout_seconds=schedule_timeout,
            startup_timeout_seconds=startup_timeout,
            deferrable=deferrable,
            durable=True,  # a retry after a lost worker re-attaches to the pod (labels: dag, task, run)
            # No XCom sidecar (it needs exec into the pod): the result comes from MLflow, pushed by execute.
            do_xcom_push=False,
            get_logs=True,
            log_events_on_failure=True,
            on_finish_action="delete_pod",
            **kwargs,
        )
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
        self.gpu, self.cpu, self.memory = gpu, cpu, memory
        self.cpu_limit, self.memory_limit = cpu_limit, memory_limit
        self.gpu_type, self.gpu_type_label = gpu_type, gpu_type_label
        self._process: subprocess.Popen | None = None
        self._launch_failure: TrainingError | None = None

    # ---- the pod ---------------------------------------------------------------------------
    def pod_resources(self, gpu: int) -> Any:
        from kubernetes.client import models as k8s

        limits = {"cpu": self.cpu_limit or self.cpu, "memory": self.memory_limit or self.memory}
        if gpu:
            limits["nvidia.com/gpu"] = str(gpu)
        return k8s.V1ResourceRequirements(requests={"cpu": self.cpu, "memory": self.memory}, limits=limits)

    def gpu_affinity(self, gpu: int) -> Any:
        """Required node affinity to the GPU model, when the spec names one and the run asks for GPUs."""
        from kubernetes.client import models as k8s

        if not (gpu and self.gpu_type):
            return None
        term = k8s.V1NodeSelectorTerm(match_expressions=[k8s.V1NodeSelectorRequirement(
            key=self.gpu_type_label, operator="In", values=[self.gpu_type])])
        return k8s.V1Affinity(node_affinity=k8s.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(node_selector_terms=[term])))

    def prepare(self, context: Any, settings: Settings) -> tuple[dict[str, Any], str]:
        """Fill in what depends on the run: image, arguments, environment, GPU count. Returns the
        training config and its reuse key (what the model would be built from)."""
        from airflow.providers.cncf.kubernetes.backcompat.backwards_compat_converters import convert_env_vars

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
        self.image = self.image or settings.training_image
        # Unique per launch: the entrypoint's MLflow run carries it, and the result is looked up by it.
        config["tags"][train_reuse.ATTEMPT_TAG] = uuid.uuid4().hex
        code = self.code_identity(config)
        self.arguments = ["--config", json.dumps(config, sort_keys=True)]
        self.container_resources = self.pod_resources(gpu)
        self.affinity = self.gpu_affinity(gpu) or self.affinity
        mlflow_env = MlflowHook(settings.mlflow_tracking_uri, settings.mlflow_artifact_root).environment()
        # Only non-secret settings go into the pod spec; keys come from `env_from_secret` there.
        public = {k: v for k, v in lake_hook.environment().items() if k in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
        self.env_vars = convert_env_vars({**mlflow_env, **public})
        key = train_reuse.training_key(config, list(fingerprints.values()), code)
        self.annotations = {**(self.annotations or {}), TRAINING_KEY_ANNOTATION: key}
        return config, key

    def code_identity(self, config: dict[str, Any]) -> str | None:
        """What stands for the training code in the reuse key: in a pod the image's digest (or its tag,
        with a warning); locally None, i.e. the source files. Records the image on the run."""
        if self.execution != "kubernetes":
            return None
        code, pinned = train_reuse.image_identity(self.image)
        if not pinned:
            self.log.warning("training image %s has no digest: reuse of earlier models is keyed on the tag, so new "
                             "code pushed under the same tag would not retrain; pin it as "
                             "train.kubernetes.image: <repo>@sha256:<digest>", self.image)
        config["tags"]["skylift.image"] = self.image
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
        config, key = self.prepare(context, settings)
        mlflow_hook = MlflowHook(settings.mlflow_tracking_uri)
        result = self.earlier_result(context, mlflow_hook, config["experiment"], key)
        if result is None:
            if self.execution == "kubernetes":
                attempt = self.run_pod(context, mlflow_hook, config)  # may defer: then trigger_reentry goes on
            else:
                mlflow_hook.fail_stale_runs(config["experiment"], context["ti"].run_id, partition_date(context))
                attempt = self.run_locally(context, settings)
            result = self.collect(mlflow_hook, attempt)
        return self.publish(context, mlflow_hook, result)

    def run_pod(self, context: Any, mlflow_hook: MlflowHook, config: dict[str, Any]) -> TrainingAttempt:
        """Create the pod, or re-attach to this task's live one, and follow it to its end."""
        live = self.find_pod(self.namespace, context)
        if live is None or (live.status and live.status.phase in ("Succeeded", "Failed")):
            mlflow_hook.fail_stale_runs(config["experiment"], context["ti"].run_id, partition_date(context))
        else:  # its MLflow run is alive: leave it RUNNING
            self.log.info("re-attaching to training pod %s (%s)", live.metadata.name, live.status.phase)
        try:
            super().execute(context)
        except Exception as exc:
            if self._launch_failure is not None:
                raise self._launch_failure from exc
            raise
        return TrainingAttempt.of_pod(self.pod)

    def invoke_defer_method(self, last_log_time: Any = None, context: Any = None) -> None:
        if self.pod is not None:
            self.trigger_kwargs = {**(self.trigger_kwargs or {}),
                                   ATTEMPT_EVENT_KEY: TrainingAttempt.of_pod(self.pod).as_dict()}
        super().invoke_defer_method(last_log_time=last_log_time, context=context)

    def trigger_reentry(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the triggerer: the provider's log and clean-up, then Skylift's result check, reuse
        tag and MLflow link, exactly as after a synchronous run."""
        from kubernetes.client import models as k8s

        try:
            super().trigger_reentry(context, event)
        except Exception as exc:
            if event.get("status") == "timeout":
                pod = self.pod or k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=event["name"],
                                                                      namespace=event["namespace"]))
                failure = self.scheduling_failure(pod)
                if failure is not None:
                    raise failure from exc
            raise
        if ATTEMPT_EVENT_KEY not in event:
            raise TrainingError(f"the trigger's event for pod {event.get('name')} names no training attempt; "
                                "clear the task to train again")
        attempt = TrainingAttempt(**event[ATTEMPT_EVENT_KEY])
        mlflow_hook = MlflowHook(Settings.resolve().mlflow_tracking_uri)
        return self.publish(context, mlflow_hook, self.collect(mlflow_hook, attempt))

    def await_pod_start(self, pod: Any) -> None:
        from airflow.providers.cncf.kubernetes.utils.pod_manager import PodLaunchTimeoutException

        try:
            super().await_pod_start(pod)
        except PodLaunchTimeoutException:
            # The provider's clean-up raises its own error after this; execute re-raises this one.
            self._launch_failure = self.scheduling_failure(pod)
            raise

    def scheduling_failure(self, pod: Any) -> TrainingError | None:
        """The scheduler's reason a pod found no node, with the spec key to change; None when it was not
        a scheduling problem. Events outlive the pod, so this works after its deletion too."""
        events = [e for e in self.pod_manager.read_pod_events(pod).items if e.reason == "FailedScheduling"]
        if not events:
            return None
        message = events[-1].message.strip()
        keys = [key for needle, key in UNSCHEDULABLE_HINTS if needle in message]
        change = " and ".join(keys) if keys else "the pod's resources or placement"
        return TrainingError(
            f"training pod {pod.metadata.namespace}/{pod.metadata.name} found no node within schedule_timeout "
            f"({self.schedule_timeout_seconds}s, train.kubernetes.schedule_timeout): {message} Change {change}, "
            "or add nodes that fit.")

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

    def run_locally(self, context: Any, settings: Settings) -> TrainingAttempt:
        """Run the rendered pod's container command and environment as a subprocess."""
        pod = self.build_pod_request_obj(context, dry_run=True)
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
        if self.execution == "kubernetes":
            super().on_kill()


@functools.cache
def _models_configuration() -> Any:
    """The client configuration the pod's Kubernetes models check their fields with (one per process)."""
    from kubernetes.client import Configuration

    return Configuration.get_default_copy()


def pod_arguments(resources: Any, kubernetes: Any) -> dict[str, Any]:
    """The operator's arguments from a spec's `train.resources` and `train.kubernetes`."""
    return {
        "gpu": resources.gpu, "gpu_type": resources.gpu_type, "gpu_type_label": resources.gpu_type_label,
        "cpu": resources.cpu, "cpu_limit": resources.cpu_limit,
        "memory": resources.memory, "memory_limit": resources.memory_limit,
        "namespace": kubernetes.namespace, "image": kubernetes.image,
        "image_pull_secrets": kubernetes.image_pull_secrets,
        "node_selector": kubernetes.node_selector, "tolerations": kubernetes.tolerations,
        "env_from_secret": kubernetes.env_from_secret, "service_account": kubernetes.service_account,
        "priority_class": kubernetes.priority_class, "shm_size": kubernetes.shm_size,
        "schedule_timeout": kubernetes.schedule_timeout, "startup_timeout": kubernetes.startup_timeout,
        "deferrable": kubernetes.deferrable,
    }
