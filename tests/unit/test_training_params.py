"""Typed hyper-parameters per framework: one model shared by the spec, the trigger form and the entrypoint."""

from __future__ import annotations

import math

import pytest

from include.training import params
from include.training.entrypoint import ConfigError, TrainConfig

BASE_CONFIG = {"lake_root": "/tmp/lake", "dataset": "f", "dates": ["2026-11-24"], "key": ["customer_id"],
               "target": "churned", "task": "classification", "experiment": "e"}


def test_valid_params_come_back_unchanged_without_defaults():
    xgb = {"max_depth": 4, "eta": 0.1, "num_boost_round": 150, "lambda": 1.0, "grow_policy": "lossguide"}
    torch = {"hidden": [64, 32], "epochs": 30, "lr": 0.003, "batch_size": 256}
    assert params.check("xgboost", xgb) == xgb
    assert params.check("pytorch", torch) == torch
    assert params.check("pytorch", {"lr": 1}) == {"lr": 1}  # an int is a fine float


@pytest.mark.parametrize("framework,given,expected", [
    ("xgboost", {"max_dept": 4}, "max_dept: not a xgboost parameter; did you mean 'max_depth'?"),
    ("pytorch", {"hiden": [32]}, "hiden: not a pytorch parameter; did you mean 'hidden'?"),
    ("pytorch", {"max_depth": 3}, "max_depth: not a pytorch parameter; known: ['batch_size', 'epochs', 'hidden', "
                                  "'lr', 'patience', 'seed', 'weight_decay']"),
    ("xgboost", {"eta": "fast"}, "eta: Input should be a valid number"),
    ("xgboost", {"max_depth": "4"}, "max_depth: Input should be a valid integer"),
    ("xgboost", {"subsample": 1.5}, "subsample: Input should be less than or equal to 1"),
    ("xgboost", {"eta": 0.1, "learning_rate": 0.2}, "learning_rate: is the same parameter as 'eta'"),
    ("xgboost", {"tree_method": "gpu_hist"}, "tree_method: Input should be 'hist', 'approx' or 'exact'"),
    ("pytorch", {"epochs": True}, "epochs: Input should be a valid integer"),
    ("pytorch", {"hidden": [64, 0]}, "hidden.1: Input should be greater than or equal to 1"),
    ("pytorch", {"lr": math.nan}, "lr: Input should be a finite number"),
    ("pytorch", {"batch_size": 0}, "batch_size: Input should be greater than or equal to 1"),
])
def test_bad_params_are_named_with_a_hint(framework, given, expected):
    found = "; ".join(params.describe(p) for p in params.problems(framework, given))
    assert expected in found
    with pytest.raises(ValueError, match="^" + expected.split(":")[0]):
        params.check(framework, given)


def test_the_models_cover_what_the_trainers_read():
    from include.training import torch_trainer, xgboost_trainer

    assert set(torch_trainer.DEFAULTS) == set(params.names("pytorch"))
    assert set(xgboost_trainer.DEFAULTS) - {"tree_method"} <= set(params.names("xgboost"))
    assert {"num_boost_round", "early_stopping_rounds"} <= set(params.names("xgboost"))


def test_trigger_schema_gives_the_model_bounds():
    assert params.trigger_schema("xgboost", "eta") == {"type": "number", "exclusiveMinimum": 0.0, "maximum": 1.0}
    assert params.trigger_schema("pytorch", "epochs") == {"type": "integer", "minimum": 1, "maximum": 10_000}
    assert params.trigger_schema("pytorch", "hidden")["type"] == "array"
    with pytest.raises(ValueError, match="'depth' is not a xgboost parameter"):
        params.trigger_schema("xgboost", "depth")


@pytest.mark.parametrize("framework,bad,needle", [
    ("xgboost", {"eta": "fast"}, "eta: Input should be a valid number"),
    ("xgboost", {"gpu": 1, "ds": "2026-11-24"}, "ds: not a xgboost parameter"),
    ("pytorch", {"hiden": [8]}, "did you mean 'hidden'?"),
    ("pytorch", {"epochs": -1}, "epochs: Input should be greater than or equal to 1"),
])
def test_the_entrypoint_refuses_bad_params_before_training(framework, bad, needle):
    with pytest.raises(ConfigError, match=f"config key 'params' refused for {framework}: .*{needle}"):
        TrainConfig.from_dict({**BASE_CONFIG, "framework": framework, "params": bad})
    good = TrainConfig.from_dict({**BASE_CONFIG, "framework": framework, "params": {"seed": 3}})
    assert good.params == {"seed": 3}
