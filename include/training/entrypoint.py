"""Train one model on lake features and record it in one MLflow run.

    python -m include.training.entrypoint --config '<json>'      (or --config-file PATH)

Config (JSON object; unknown keys are rejected):
    lake_root         str, required     lake root: file:///..., a local path or s3://bucket/prefix
    dataset           str, required     dataset name in the zone
    dates             [str], required   partition dates, YYYY-MM-DD, no duplicates
    zone              str = "features"
    key               [str], required   entity key column(s); the holdout is split by their hash
    target            str, required     label column (0/1 or bool for classification)
    exclude           [str] = []        columns never used as features
    framework         "xgboost" | "pytorch", required
    task              "classification" | "regression", required
    params            {} = {}           framework params (see xgboost_trainer / torch_trainer)
    holdout_fraction  float in (0, 1) = 0.2
    experiment        str, required     MLflow experiment name (created when missing)
    run_name          str = "<dataset>-<framework>-<last date>"
    tags              {str: str} = {}   MLflow run tags
    device            "auto" | "cpu" | "cuda" = "auto" (auto: cuda when torch sees a GPU)
    labels            {} | null = null  outcomes from their own dataset (include.labels.LabelInput): dataset,
                                        column, key, as_of, delay_days, arrivals (label partitions landed by
                                        the cutoff), cutoff, holdout_dates (the newest feature days, held out
                                        by time instead of by key hash). Without it the target is a feature column.

Environment: MLFLOW_TRACKING_URI (required), SKYLIFT_ARTIFACT_ROOT (artifact root for experiments this
creates: <root>/<experiment>), SKYLIFT_RESULT_PATH (optional: also write the result there), AWS_* for an
S3 lake (read by s3fs).

The result stays in MLflow: the run's artifact `skylift/result.json`, logged before the run ends, so a
FINISHED run always has it. The operator finds the run by the `skylift.attempt_id` tag it put in `tags`;
nothing is read back from the pod's filesystem. The result JSON:
    {"run_id", "experiment_id", "model_uri": "runs:/<run_id>/model", "model_id", "metrics": {name: float|null},
     "device", "framework", "task", "feature_columns": [...], "rows": {"train", "valid", "holdout"},
     "dates": [...], "label_dates": [...], "holdout_dates": [...]}

The logged model ("model") has a column-based signature: the feature columns, in order, with the training
frame's types (int64 -> long, float -> double, bool -> boolean). `mlflow.pyfunc.load_model(uri).predict(df)`
accepts the raw feature frame (extra columns are dropped, order does not matter; int64 columns must stay
int64, i.e. hold no missing values) and returns, per row, a probability (classification) or a value:
    xgboost: numpy float32 array, shape (n,)
    pytorch: pandas DataFrame with one column (named 0), shape (n, 1), same index as the input
Normalise both with `np.asarray(out, dtype="float64").reshape(-1)`. The PyTorch model is saved in the
`pt2` (torch.export) format, traced on the CPU; its pyfunc config pins device "cpu" so it also loads on a
GPU host (a pt2 program cannot move between devices).

Exit codes: 0 success (SKYLIFT_RESULT_PATH, when set, is printed on stdout), 2 bad config, 1 any other failure (the run,
when one was started, is marked FAILED). Errors go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

from include.errors import LabelError, SkyliftError, TrainingError
from include.labels import FEATURE_DATE, LabelInput, point_in_time_join
from include.training import params as hyper_parameters
from include.training.data import (
    feature_matrix,
    load_frame,
    require_both_classes,
    require_rows,
    split_columns,
    target_vector,
)
from include.training.holdout import key_unit_interval
from include.training.metrics import evaluate

log = logging.getLogger("include.training")

FRAMEWORKS = ("xgboost", "pytorch")
TASKS = ("classification", "regression")
DEVICES = ("auto", "cpu", "cuda")
RESULT_ARTIFACT = "skylift/result.json"
VALID_FRACTION = 0.1  # of the non-holdout keys, for early stopping
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
MODEL_NAME = "model"
NOT_COMPUTABLE_TAG = "skylift.metrics_not_computable"  # metrics the holdout could not support, comma-separated


class ConfigError(TrainingError, ValueError):
    """The training config is invalid; the message names the key."""


# ---- config -----------------------------------------------------------------------------------
def _str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"must be a list of non-empty strings, got {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"has duplicates: {value!r}")
    return list(value)


def _nonempty_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    out = _str_list(value)
    if not out:
        raise ValueError("must not be empty")
    return out


def _dates(value: Any) -> list[str]:
    out = _nonempty_list(value)
    for ds in out:
        try:
            ok = len(ds) == 10 and date.fromisoformat(ds).isoformat() == ds
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"must hold YYYY-MM-DD dates, got {ds!r}")
    return out


def _choice(options: tuple[str, ...]):
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {list(options)}, got {value!r}")
        return value

    return check


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _params(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"must be an object, got {value!r}")
    if "device" in value:
        raise ValueError("must not set 'device': use the top-level 'device' key")
    return dict(value)


def _tags(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str | int | float | bool) for v in value.values()):
        raise ValueError(f"must be an object of strings, got {value!r}")
    return {str(k): str(v) for k, v in value.items()}


def _optional_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _labels(value: Any) -> LabelInput | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"must be an object, got {value!r}")
    try:
        found = LabelInput.from_config(value)
        _dates(list(found.holdout_dates))
        _dates([found.cutoff])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"lacks or mistypes {exc}") from None
    if found.arrivals:
        _dates(list(found.arrivals))
    return found


def _check_model_params(framework: str, params: dict[str, Any]) -> None:
    """Checked again here: a pod or a hand-written config must not hand the library an unchecked value."""
    try:
        hyper_parameters.check(framework, params)
    except ValueError as exc:
        raise ConfigError(f"config key 'params' refused for {framework}: {exc}") from None


_REQUIRED = object()
_FIELDS: dict[str, tuple[Any, Any]] = {
    "lake_root": (_str, _REQUIRED),
    "dataset": (_str, _REQUIRED),
    "dates": (_dates, _REQUIRED),
    "zone": (_str, "features"),
    "key": (_nonempty_list, _REQUIRED),
    "target": (_str, _REQUIRED),
    "exclude": (_str_list, []),
    "framework": (_choice(FRAMEWORKS), _REQUIRED),
    "task": (_choice(TASKS), _REQUIRED),
    "params": (_params, {}),
    "holdout_fraction": (_fraction, 0.2),
    "experiment": (_str, _REQUIRED),
    "run_name": (_optional_str, None),
    "tags": (_tags, {}),
    "device": (_choice(DEVICES), "auto"),
    "labels": (_labels, None),
}


@dataclass(frozen=True)
class TrainConfig:
    lake_root: str
    dataset: str
    dates: list[str]
    key: list[str]
    target: str
    framework: str
    task: str
    experiment: str
    zone: str = "features"
    exclude: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    holdout_fraction: float = 0.2
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    device: str = "auto"
    labels: LabelInput | None = None

    @classmethod
    def from_dict(cls, raw: Any) -> TrainConfig:
        if not isinstance(raw, dict):
            raise ConfigError(f"training config must be a JSON object, got {type(raw).__name__}")
        unknown = sorted(set(raw) - set(_FIELDS))
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; known keys: {sorted(_FIELDS)}")
        values: dict[str, Any] = {}
        for name, (check, default) in _FIELDS.items():
            if name not in raw:
                if default is _REQUIRED:
                    raise ConfigError(f"config key {name!r} is required")
                values[name] = default if not isinstance(default, list | dict) else type(default)(default)
                continue
            try:
                values[name] = check(raw[name])
            except ValueError as exc:
                raise ConfigError(f"config key {name!r} {exc}") from None
        if values["target"] in values["key"] or values["target"] in values["exclude"]:
            raise ConfigError(f"config key 'target' ({values['target']!r}) must not also be a key or excluded column")
        labels = values["labels"]
        if labels is not None and labels.plan.column != values["target"]:
            raise ConfigError(f"config key 'labels' carries {labels.plan.column!r} but the target is "
                              f"{values['target']!r}")
        if labels is not None and not set(labels.holdout_dates) < set(values["dates"]):
            raise ConfigError(f"config key 'labels' holds out {list(labels.holdout_dates)}, which must be some but "
                              f"not all of the dates {values['dates']}")
        _check_model_params(values["framework"], values["params"])
        return cls(**values)

    @property
    def default_run_name(self) -> str:
        return self.run_name or f"{self.dataset}-{self.framework}-{self.dates[-1]}"


def read_config(args: argparse.Namespace) -> TrainConfig:
    text = Path(args.config_file).read_text() if args.config_file else args.config
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc}") from None
    return TrainConfig.from_dict(raw)


# ---- data -------------------------------------------------------------------------------------
@dataclass
class Prepared:
    features: list[str]
    sample: pd.DataFrame  # feature columns of up to 1000 training rows, raw dtypes (signature, input example)
    X_fit: np.ndarray
    y_fit: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_holdout: np.ndarray
    y_holdout: np.ndarray

    @property
    def rows(self) -> dict[str, int]:
        return {
            "train": len(self.X_fit) + len(self.X_valid),
            "valid": len(self.X_valid),
            "holdout": len(self.X_holdout),
        }


def labelled_frame(config: TrainConfig) -> pd.DataFrame:
    """The training rows as known on the cutoff: each feature day joined to its outcomes from the
    label partitions that had landed by then (include.labels), with FEATURE_DATE per row."""
    from include.lake import Lake

    labels = config.labels
    lake = Lake(config.lake_root)
    features = {d: load_frame(config.lake_root, config.dataset, [d], zone=config.zone) for d in config.dates}
    drops = {}
    for arrival in labels.arrivals:
        drops[arrival] = lake.read_table("validated", labels.dataset, arrival).to_pandas()
        log.info("read %s label rows from validated/%s/ds=%s", len(drops[arrival]), labels.dataset, arrival)
    try:
        frame = point_in_time_join(features, drops, labels.plan, cutoff=labels.cutoff)
    except LabelError as exc:
        raise TrainingError(f"labels of validated/{labels.dataset}: {exc}") from exc
    counts = frame[FEATURE_DATE].value_counts().to_dict()
    log.info("labelled rows per feature day: %s", {d: counts.get(d, 0) for d in config.dates})
    unlabelled = [d for d in config.dates if not counts.get(d)]
    if unlabelled:
        raise TrainingError(f"feature day(s) {unlabelled} have no outcome in validated/{labels.dataset} partitions "
                            f"{list(labels.arrivals)}: their labels have not landed")
    return frame


def prepare(config: TrainConfig) -> Prepared:
    """Load the frames and split them into holdout, valid (10% of the other keys) and fit.

    With labels, the holdout is the newest feature days (a time-based split, as the model will be
    used); without, it is the keys whose hash falls below the holdout fraction.
    """
    if config.labels is not None:
        frame = labelled_frame(config)
        exclude = [*config.exclude, FEATURE_DATE]
        holdout = frame[FEATURE_DATE].isin(config.labels.holdout_dates).to_numpy()
        u = key_unit_interval(frame[config.key])
        valid = ~holdout & (u < VALID_FRACTION)
    else:
        frame = load_frame(config.lake_root, config.dataset, config.dates, zone=config.zone)
        exclude = config.exclude
        # Same draw as holdout_mask(frame[key], fraction): holdout = u < fraction.
        u = key_unit_interval(frame[config.key])
        holdout = u < config.holdout_fraction
        valid = ~holdout & (u < config.holdout_fraction + (1 - config.holdout_fraction) * VALID_FRACTION)
    where = f"{config.zone}/{config.dataset} ds={', '.join(config.dates)}"
    require_rows(frame, where)
    features = split_columns(frame, config.key, config.target, exclude)
    y = target_vector(frame, config.target, config.task, where=where, key=config.key)
    if holdout.all() or not holdout.any():
        raise TrainingError(
            f"the holdout split of {len(frame)} rows left {int((~holdout).sum())} training and "
            f"{int(holdout.sum())} holdout rows; both must be non-empty"
        )
    if config.task == "classification":
        require_both_classes(y[~holdout], config.target, f"{where} (holdout rows excluded)")
    fit = ~holdout & ~valid
    if not valid.any() or not fit.any():
        log.warning("too few keys for a separate validation set: early stopping watches the training rows")
        fit = valid = ~holdout
    X = feature_matrix(frame, features)
    return Prepared(
        features=features,
        sample=frame.iloc[np.flatnonzero(~holdout)[:1000]][features].reset_index(drop=True),
        X_fit=X[fit],
        y_fit=y[fit],
        X_valid=X[valid],
        y_valid=y[valid],
        X_holdout=X[holdout],
        y_holdout=y[holdout],
    )


# ---- training ---------------------------------------------------------------------------------
def resolve_device(requested: str, framework: str) -> str:
    """auto: cuda when a GPU is really visible to the framework (xgboost only warns and uses the
    CPU otherwise)."""
    gpu = gpu_visible(framework)
    if requested == "auto":
        return "cuda" if gpu else "cpu"
    if requested == "cuda" and not gpu:
        raise TrainingError(f"device 'cuda' was requested but {framework} sees no GPU here "
                            f"({GPU_CHECKS[framework]} is False)")
    return requested


GPU_CHECKS = {"pytorch": "torch.cuda.is_available()",
              "xgboost": "a CUDA build of xgboost with an NVIDIA device in /dev and CUDA_VISIBLE_DEVICES not empty"}


def gpu_visible(framework: str) -> bool:
    """Whether `framework` can train on a GPU here. XGBoost is asked without importing torch (seconds
    of start-up in every trial process, for a framework that does not use it)."""
    if framework == "pytorch":
        import torch

        return bool(torch.cuda.is_available())
    import xgboost

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return bool(xgboost.build_info().get("USE_CUDA")) and any(Path("/dev").glob("nvidia[0-9]*"))


def fit_model(config: TrainConfig, data: Prepared, device: str) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """(model, holdout predictions, effective params)."""
    if config.framework == "xgboost":
        from include.training import xgboost_trainer as xt

        booster = xt.train(
            data.X_fit, data.y_fit, data.X_valid, data.y_valid, config.task, config.params, device, data.features
        )
        predictions = xt.predict(booster, data.X_holdout, data.features)
        return booster, predictions, xt.effective_params(config.task, config.params, device)
    from include.training import torch_trainer as tt

    module = tt.train(data.X_fit, data.y_fit, data.X_valid, data.y_valid, config.task, config.params, device)
    return module, tt.predict(module, data.X_holdout), tt.resolve_params(config.params)


# ---- MLflow -----------------------------------------------------------------------------------
def redact_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def ensure_experiment(name: str) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    found = mlflow.get_experiment_by_name(name)
    if found is None:
        root = os.environ.get("SKYLIFT_ARTIFACT_ROOT")
        location = f"{root.rstrip('/')}/{name}" if root else None
        try:
            return mlflow.create_experiment(name, artifact_location=location)
        except MlflowException:  # created concurrently by another run
            found = mlflow.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage != "active":
        raise TrainingError(f"MLflow experiment {name!r} is deleted: restore it or use another name")
    return found.experiment_id


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 3] + "..."


def config_params(config: TrainConfig, device: str) -> dict[str, str]:
    dates = ",".join(config.dates)
    if len(dates) > MAX_PARAM_CHARS:
        dates = f"{config.dates[0]}..{config.dates[-1]} ({len(config.dates)} dates)"
    labels = {}
    if config.labels is not None:
        labels = {"labels_dataset": config.labels.dataset, "labels_cutoff": config.labels.cutoff,
                  "label_dates": _param_text(",".join(config.labels.arrivals)),
                  "holdout_dates": ",".join(config.labels.holdout_dates)}
    return {
        **labels,
        "dataset": config.dataset,
        "zone": config.zone,
        "dates": dates,
        "key": ",".join(config.key),
        "target": config.target,
        "framework": config.framework,
        "task": config.task,
        "holdout_fraction": str(config.holdout_fraction),
        "device": device,
    }


def log_plot(task: str, y_true: np.ndarray, y_pred: np.ndarray, metrics: dict[str, float]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5))
    if task == "classification":
        path = "plots/roc_curve.png"
        if len(np.unique(y_true)) == 2:
            fpr, tpr, _ = roc_curve(y_true, y_pred)
            ax.plot(fpr, tpr, label=f"AUC {metrics['auc']:.3f}")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (holdout)")
        ax.legend(loc="lower right")
    else:
        path = "plots/predicted_vs_actual.png"
        pick = np.random.default_rng(0).permutation(len(y_true))[:5000]
        ax.scatter(y_true[pick], y_pred[pick], s=4, alpha=0.4)
        low, high = float(np.min(y_true)), float(np.max(y_true))
        ax.plot([low, high], [low, high], linestyle="--", color="grey")
        ax.set(xlabel="actual", ylabel="predicted", title=f"Predicted vs actual (holdout), R² {metrics['r2']:.3f}")
    fig.tight_layout()
    mlflow.log_figure(fig, path)
    plt.close(fig)
    return path


def _pip_requirements(framework: str) -> list[str]:
    """Pinned requirements (inferring them costs a model-loading subprocess, ~7 s)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for package in ("mlflow", "numpy", "pandas", "xgboost" if framework == "xgboost" else "torch"):
        try:
            out.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            out.append(package)
    return out


def column_signature(data: Prepared, predictions: np.ndarray):
    import warnings

    from mlflow.models import infer_signature

    with warnings.catch_warnings():  # the hint about integer columns and missing values; see module doc
        warnings.simplefilter("ignore", UserWarning)
        return infer_signature(data.sample, np.asarray(predictions[:10], dtype=np.float32))


def _input_example(data: Prepared) -> pd.DataFrame:
    head = data.sample.head(5)
    complete = head.dropna()
    return complete if len(complete) else head.fillna(0)


def log_xgboost_model(booster, data: Prepared, predictions: np.ndarray):
    import mlflow.xgboost

    from include.training.xgboost_trainer import portable

    return mlflow.xgboost.log_model(
        portable(booster),
        name=MODEL_NAME,
        signature=column_signature(data, predictions),
        input_example=_input_example(data),
        pip_requirements=_pip_requirements("xgboost"),
    )


def log_pytorch_model(module, data: Prepared, predictions: np.ndarray):
    """Save as pt2 (traced, needs a tensor signature), then give the MLmodel the column signature."""
    import mlflow.pytorch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    n = len(data.features)
    example = np.nan_to_num(feature_matrix(_input_example(data), data.features))
    if len(example) < 2:  # a batch of 1 would freeze the batch dimension in the traced program
        example = np.repeat(example, 2, axis=0)
    tensor_signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, n))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]),
    )
    info = mlflow.pytorch.log_model(
        module.cpu().eval(),
        name=MODEL_NAME,
        signature=tensor_signature,
        input_example=example,
        serialization_format="pt2",
        pip_requirements=_pip_requirements("pytorch"),
    )
    rewrite_mlmodel(info.model_id, column_signature(data, predictions), {"device": "cpu"}, _input_example(data))
    return info


def rewrite_mlmodel(model_id: str, signature, pyfunc_config: dict[str, Any], input_example: pd.DataFrame) -> None:
    """Give a logged model a new signature and input example and merge its pyfunc config.

    Edits the small MLmodel YAML in place (as `mlflow.models.set_signature` does) and rewrites the
    example files so that `mlflow models serve` and the UI show a DataFrame example matching the signature.
    """
    import mlflow
    from mlflow.models import Model
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    location = client.get_logged_model(model_id).artifact_location.rstrip("/")
    with tempfile.TemporaryDirectory(prefix="skylift-mlmodel-") as tmp:
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"{location}/MLmodel", dst_path=tmp)
        model = Model.load(path)
        model.signature = signature
        model.flavors["python_function"].setdefault("config", {}).update(pyfunc_config)
        examples = Path(tmp) / "examples"
        examples.mkdir()
        try:
            from mlflow.models.utils import _save_example  # private, hence the fallback

            _save_example(model, input_example, str(examples))
        except Exception as exc:  # keep the tensor example rather than fail a trained run
            log.warning("could not rewrite the model's input example (%s); keeping the tensor one", exc)
        model.save(path)
        client.log_model_artifact(model_id, path)
        for example in sorted(examples.iterdir()):
            client.log_model_artifact(model_id, str(example))


def log_drift_reference(data: Prepared) -> None:
    """The training rows' per-feature bins and sample, which scoring's drift check compares days with."""
    import mlflow

    from include.drift import REFERENCE_ARTIFACT, build_reference

    # Too few keys for a validation set: fit and valid are the same rows (see `prepare`), counted once.
    same = data.X_fit.shape == data.X_valid.shape and np.array_equal(data.X_fit, data.X_valid, equal_nan=True)
    rows = data.X_fit if same else np.vstack([data.X_fit, data.X_valid])
    mlflow.log_dict(build_reference(data.features, rows).to_dict(), REFERENCE_ARTIFACT)


def log_importance(booster, features: list[str]) -> None:
    import mlflow

    from include.training.xgboost_trainer import feature_importance

    mlflow.log_dict(feature_importance(booster, features), "feature_importance.json")


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}


def train_and_log(config: TrainConfig) -> dict[str, Any]:
    """Every step of a training run; returns the result document."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise TrainingError("MLFLOW_TRACKING_URI is not set: the run and the model would be lost with the pod")
    device = resolve_device(config.device, config.framework)
    experiment_id = ensure_experiment(config.experiment)
    tags = {
        **config.tags,
        "skylift.framework": config.framework,
        "skylift.task": config.task,
        "skylift.device": device,
        "skylift.dataset": config.dataset,
    }
    log.info("MLflow %s, experiment %r (%s), device %s", redact_uri(uri), config.experiment, experiment_id, device)
    with mlflow.start_run(experiment_id=experiment_id, run_name=config.default_run_name, tags=tags) as run:
        try:
            result = _run_steps(config, device)
        except BaseException as exc:
            mlflow.set_tag("skylift.error", _param_text(f"{type(exc).__name__}: {exc}")[:5000])
            raise  # the context manager ends the run as FAILED
        result.update(run_id=run.info.run_id, experiment_id=experiment_id)
        result["model_uri"] = f"runs:/{run.info.run_id}/{MODEL_NAME}"
        mlflow.log_dict(result, RESULT_ARTIFACT)
        if os.environ.get("SKYLIFT_RESULT_PATH"):
            write_result(result, Path(os.environ["SKYLIFT_RESULT_PATH"]))
    return result


def _run_steps(config: TrainConfig, device: str) -> dict[str, Any]:
    import mlflow

    mlflow.log_params(config_params(config, device))
    data = prepare(config)
    rows = data.rows
    log.info("rows: %s; %s features", rows, len(data.features))
    model, predictions, params = fit_model(config, data, device)
    metrics = evaluate(config.task, data.y_holdout, predictions)
    log.info("holdout metrics: %s", metrics)
    not_computable = sorted(name for name, value in metrics.items() if not math.isfinite(value))
    if not_computable:  # e.g. AUC on a one-class holdout: recorded as such, never as NaN
        mlflow.set_tag(NOT_COMPUTABLE_TAG, ",".join(not_computable))
    mlflow.log_params({k: _param_text(v) for k, v in params.items() if k != "device"})
    counts = {f"rows_{name}": count for name, count in rows.items()}
    mlflow.log_params({**counts, "n_features": len(data.features)})
    mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
    mlflow.log_dict({"feature_columns": data.features}, "feature_columns.json")
    log_drift_reference(data)
    log_plot(config.task, data.y_holdout, predictions, metrics)
    if config.framework == "xgboost":
        log_importance(model, data.features)
        info = log_xgboost_model(model, data, predictions)
    else:
        info = log_pytorch_model(model, data, predictions)
    return {
        "model_id": info.model_id,
        "metrics": _finite(metrics),
        "device": device,
        "framework": config.framework,
        "task": config.task,
        "feature_columns": data.features,
        "rows": rows,
        "dates": config.dates,
        "label_dates": list(config.labels.arrivals) if config.labels else [],
        "holdout_dates": list(config.labels.holdout_dates) if config.labels else [],
    }


def write_result(result: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True))
    tmp.replace(path)
    return path


# ---- CLI --------------------------------------------------------------------------------------
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m include.training.entrypoint", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="training config as a JSON object")
    source.add_argument("--config-file", help="path of a JSON file holding the training config")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log.setLevel(logging.INFO)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = _parse_args(argv)
    try:
        config = read_config(args)
    except (ConfigError, OSError) as exc:
        log.error("invalid training config: %s", exc)
        return 2
    try:
        result = train_and_log(config)
    except SkyliftError as exc:
        log.error("training failed: %s", exc)
        return 1
    except Exception:
        log.exception("training failed")
        return 1
    if os.environ.get("SKYLIFT_RESULT_PATH"):
        print(os.environ["SKYLIFT_RESULT_PATH"])
    log.info("run %s: %s", result["run_id"], result["metrics"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
