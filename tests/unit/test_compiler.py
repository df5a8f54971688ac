"""The compiler: model parameters reach the trainer untouched, trigger forms carry the model's bounds,
and every task refuses a conf key its DAG does not declare."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from include.errors import SpecError
from operators.base import refuse_undeclared_conf
from operators.spec.compiler import dags_from_spec_file
from operators.spec.loader import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "dags" / "pipelines").glob("*.yaml"))


@pytest.fixture(scope="module")
def compiled():
    return {path.stem: (load_spec(path), dags_from_spec_file(path)) for path in SPECS}


def test_the_trainer_gets_exactly_the_specs_model_params(compiled):
    """Not `params=`: Airflow would merge the DAG's trigger-form Params (ds, gpu, rebuild, ...) into it."""
    for spec, dags in compiled.values():
        for dag_id, dag in dags.items():
            if "train" not in dag.task_dict:
                continue
            train = dag.get_task("train")
            assert train.model_params == spec.train.params, dag_id
            assert train.tunable == sorted(spec.dags[dag_id.removeprefix(spec.pipeline + "_")].params), dag_id
            assert {"ds", "rebuild", "gpu"} <= set(train.params)  # what Airflow merged, kept apart


def test_only_the_dags_own_params_are_tunable(compiled):
    spec, dags = compiled["spend"]
    assert dags["spend_nightly"].get_task("train").tunable == []
    assert dags["spend_retrain"].get_task("train").tunable == ["epochs", "lr"]


def test_trigger_form_fields_carry_the_model_bounds_the_spec_leaves_out(tmp_path):
    text = (ROOT / "dags" / "pipelines" / "churn.yaml").read_text()
    folder = tmp_path / "pipelines"
    folder.mkdir()
    spec = folder / "churn.yaml"
    old = "      eta: {type: number, default: 0.1, minimum: 0.001, maximum: 1, description: Learning rate}"
    assert old in text
    spec.write_text(text.replace(old, "      eta: {type: number, description: Learning rate}\n"
                                      "      subsample: {type: number, default: 0.8, minimum: 0.5}"))
    retrain = dags_from_spec_file(spec)["churn_retrain"]
    eta = retrain.params.get_param("eta")
    assert eta.value == 0.1  # the spec's train.params value is the default
    assert eta.schema == {"type": "number", "exclusiveMinimum": 0.0, "maximum": 1.0}
    assert eta.description == "Learning rate"
    assert retrain.params.get_param("subsample").schema == {"type": "number", "minimum": 0.5, "maximum": 1.0}
    from airflow.sdk.definitions.param import ParamValidationError

    for bad in (0, 1.5, "fast"):
        with pytest.raises(ParamValidationError):
            eta.resolve(bad)


def test_every_task_refuses_undeclared_conf_first(compiled):
    for _, dags in compiled.values():
        for dag in dags.values():
            for task in dag.tasks:
                assert task._pre_execute_hook is refuse_undeclared_conf, (dag.dag_id, task.task_id)


def context_for(dag, conf):
    return {"dag": dag, "dag_run": SimpleNamespace(conf=conf)}


def test_an_undeclared_conf_key_fails_with_the_dags_parameters(compiled):
    _, dags = compiled["churn"]
    nightly, retrain = dags["churn_nightly"], dags["churn_retrain"]
    with pytest.raises(SpecError) as err:
        refuse_undeclared_conf(context_for(nightly, {"eta": "fast", "ds": "2026-11-24"}))
    assert str(err.value) == (
        "this run's conf has ['eta'], which is not a parameter of DAG 'churn_nightly'; its parameters are "
        f"{sorted(nightly.params)}: trigger it again without those keys")
    refuse_undeclared_conf(context_for(retrain, {"eta": 0.2, "max_depth": 3, "force_deploy": True}))
    refuse_undeclared_conf(context_for(nightly, None))
    with pytest.raises(SpecError, match=r"has \['hiden', 'lr'\], which are not a parameter of DAG 'churn_retrain'"):
        refuse_undeclared_conf(context_for(retrain, {"hiden": 3, "lr": 0.1}))


def test_the_training_operator_checks_the_runs_params_before_training(compiled):
    _, dags = compiled["spend"]
    train = dags["spend_retrain"].get_task("train")
    params = train.run_model_params({"params": {"epochs": 5, "lr": None, "ds": "2026-11-24", "gpu": 0}})
    assert params == {"hidden": [64, 32], "epochs": 5, "lr": 0.003, "batch_size": 256}
    with pytest.raises(SpecError, match=r"pytorch parameters of this run refused: epochs: Input should be greater "
                                        r"than or equal to 1 \(from the spec's train.params and the run's params "
                                        r"\['epochs', 'lr'\]\)"):
        train.run_model_params({"params": {"epochs": 0}})


def test_score_waits_for_a_success_upstream_so_a_skipped_day_is_not_scored(compiled):
    """A night that trains nothing still scores (deploy skipped, features succeeded); a day whose
    validation was skipped (`on_empty: skip`) skips features and deploy, and must skip scoring too
    rather than fail on a features partition that was never written."""
    for spec, dags in compiled.values():
        for dag_id, dag in dags.items():
            if "score" not in dag.task_dict or "features" not in dag.task_dict or spec.labels is None:
                continue
            score = dag.get_task("score")
            assert "features" in score.upstream_task_ids, dag_id
            assert score.trigger_rule == "none_failed_min_one_success", dag_id
