"""Stage 4: train a model in a GPU pod, or run the pod's exact command locally.

`TrainModelOperator` is a `KubernetesPodOperator`: it renders a pod that runs the training
entrypoint (`python -m include.training.entrypoint --config <json>`) with GPU limits, a node
selector and tolerations. With `execution="local"` (the embedded default) it renders the same
pod and runs that container's command and environment as a subprocess instead, so the two
modes cannot drift apart. The entrypoint logs everything to MLflow and returns a small JSON
result (run id, metrics) through the pod's XCom file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
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
        env_from_secret: str | None = None,
        service_account: str | None = None,
        image: str | None = None,
        reuse_unchanged: bool = True,
        label_plan: LabelPlan | None = None,
        labels_dataset: str | None = None,
        holdout_days: int = 3,
        **kwargs: Any,
    ) -> None:
        from kubernetes.client import models as k8s

        if execution not in ("local", "kubernetes"):
            raise SpecError(f"execution must be 'local' or 'kubernetes', got {execution!r}")
        secret_ref = k8s.V1SecretEnvSource(name=env_from_secret) if env_from_secret else None
        super().__init__(
            name=f"{pipeline}-train".replace("_", "-"),
            namespace=namespace,
            image=image,
            cmds=list(ENTRYPOINT),
            arguments=[],
            node_selector=node_selector or {},
            tolerations=[k8s.V1Toleration(**t) for t in (tolerations or [])],
            env_from=[k8s.V1EnvFromSource(secret_ref=secret_ref)] if secret_ref else [],
            service_account_name=service_account,
            do_xcom_push=True,
            get_logs=True,
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
        self._process: subprocess.Popen | None = None

    # ---- the pod ---------------------------------------------------------------------------
    def pod_resources(self, gpu: int) -> Any:
        from kubernetes.client import models as k8s

        limits = {"cpu": self.cpu, "memory": self.memory}
        if gpu:
            limits["nvidia.com/gpu"] = str(gpu)
        return k8s.V1ResourceRequirements(requests={"cpu": self.cpu, "memory": self.memory}, limits=limits)

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
        self.arguments = ["--config", json.dumps(config, sort_keys=True)]
        self.container_resources = self.pod_resources(gpu)
        mlflow_env = MlflowHook(settings.mlflow_tracking_uri, settings.mlflow_artifact_root).environment()
        # Only non-secret settings go into the pod spec; keys come from `env_from_secret` there.
        public = {k: v for k, v in lake_hook.environment().items() if k in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
        self.env_vars = convert_env_vars({**mlflow_env, **public})
        code = self.image if self.execution == "kubernetes" else None
        return config, train_reuse.training_key(config, list(fingerprints.values()), code)

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
        mlflow_hook.fail_stale_runs(config["experiment"], context["ti"].run_id, partition_date(context))
        result = self.earlier_result(context, mlflow_hook, config["experiment"], key)
        if result is None:
            result = super().execute(context) if self.execution == "kubernetes" else self.run_locally(context, settings)
            if not isinstance(result, dict) or "run_id" not in result:
                raise TrainingError(f"training returned no run id (got {result!r})")
            if not train_reuse.mark_reusable(mlflow_hook.client, result, key):
                self.log.info("the training result is too large to record; this run will not be reused")
        ui = mlflow_hook.ui_base() or "http://127.0.0.1:5000"
        context["ti"].xcom_push(key=RUN_XCOM_KEY, value={"ui": ui, "experiment_id": result["experiment_id"],
                                                          "run_id": result["run_id"]})
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

    def run_locally(self, context: Any, settings: Settings) -> dict[str, Any]:
        """Run the rendered pod's container command and environment as a subprocess."""
        pod = self.build_pod_request_obj(context, dry_run=True)
        container = pod.spec.containers[0]
        command = [*container.command, *container.args]
        if command[0] == "python":
            command[0] = sys.executable
        secrets = LakeHook(settings.lake_root, settings.lake_conn_id).environment()
        with tempfile.TemporaryDirectory(prefix="skylift-train-") as tmp:
            result_path = Path(tmp) / "return.json"
            env = {**os.environ, **{e.name: e.value for e in container.env or []}, **secrets,
                   "SKYLIFT_RESULT_PATH": str(result_path)}
            self.log.info("running the training pod's command locally: %s", " ".join(command[:3]))
            self._stream(command, env)
            if not result_path.exists():
                raise TrainingError("the training process exited without writing its result")
            return json.loads(result_path.read_text())

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
