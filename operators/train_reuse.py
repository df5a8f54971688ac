"""Skip a training run whose inputs have not changed: same feature partitions, same settings,
same training code. The earlier MLflow run is reused, so re-running or backfilling a date adds
no duplicate model versions.

A finished run is marked reusable only after its result is back in the operator: the key tag is
the commit marker, so a run killed halfway is never reused.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

KEY_TAG = "skylift.training_key"
RESULT_TAG = "skylift.result"
ATTEMPT_TAG = "skylift.attempt_id"  # set by the operator on the run a pod or process starts: how it finds the result
MAX_TAG_CHARS = 5000  # MLflow's limit on a tag value
# Run-specific parts of the training config: they name the run, they do not change the model.
NOT_INPUTS = ("run_name", "tags", "lake_root")
TRAINING_CODE = Path(__file__).resolve().parent.parent / "include" / "training"


def training_key(config: dict[str, Any], fingerprints: list[str], image: str | None) -> str:
    """What a model is built from. In a pod the image carries the code; locally, the source does."""
    body = {
        "config": {k: v for k, v in config.items() if k not in NOT_INPUTS},
        "features": fingerprints,
        "code": image if image else _source_digest(),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def image_identity(image: str) -> tuple[str, bool]:
    """(what stands for the code in the key, whether it is pinned). A digest names the image's content;
    a tag can be moved to other code, so a tag-only image keys reuse on the tag and the caller warns."""
    if "@sha256:" in image:
        return image.split("@", 1)[1], True
    return image, False


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(TRAINING_CODE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def find_reusable(client: Any, experiment: str, key: str) -> dict[str, Any] | None:
    """The result of the latest finished run built from `key` whose model still exists."""
    from mlflow.exceptions import MlflowException

    from include.errors import RegistryUnavailable
    from include.registry import is_missing

    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=5)
    for run in runs:
        try:
            result = json.loads(run.data.tags[RESULT_TAG])
            client.get_logged_model(result["model_id"])  # deleted models are not reused
        except (KeyError, ValueError):
            continue
        except MlflowException as exc:
            if is_missing(exc):
                continue
            raise RegistryUnavailable(f"cannot tell whether MLflow run {run.info.run_id} can be reused: its logged "
                                      f"model {result['model_id']} could not be read ({exc}); retry the task once "
                                      "the tracking server answers") from exc
        return result
    return None


def mark_reusable(client: Any, result: dict[str, Any], key: str) -> bool:
    """Record the result on its run, then the key. False when the result is too large for a tag."""
    document = json.dumps(result, sort_keys=True)
    if len(document) > MAX_TAG_CHARS:
        return False
    client.set_tag(result["run_id"], RESULT_TAG, document)
    client.set_tag(result["run_id"], KEY_TAG, key)
    return True


def find_attempt(client: Any, experiment: str, attempt_id: str) -> dict[str, Any]:
    """The result of the finished run that training attempt `attempt_id` logged."""
    from include.errors import TrainingError
    from include.training.entrypoint import RESULT_ARTIFACT

    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs(
        [found.experiment_id], filter_string=f"tags.`{ATTEMPT_TAG}` = '{attempt_id}'", max_results=5)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    if not finished:
        states = ", ".join(f"{r.info.run_id} {r.info.status}" for r in runs) or "no run at all"
        raise TrainingError(f"training attempt {attempt_id} ended but MLflow experiment {experiment!r} has no "
                            f"FINISHED run tagged {ATTEMPT_TAG}={attempt_id} ({states}); read the pod's log above")
    with tempfile.TemporaryDirectory(prefix="skylift-result-") as tmp:
        path = client.download_artifacts(finished[0].info.run_id, RESULT_ARTIFACT, tmp)
        return json.loads(Path(path).read_text())
