"""The hyper-parameters each trainer accepts, as typed models (pydantic, unknown names refused).

One home for "what may be tuned and within which bounds", shared by the spec loader
(`train.params` and the trigger-form params of a DAG), the training operator and the training
entrypoint, so a bad value from any of them is refused before XGBoost or PyTorch sees it.

The models only validate: they hold no defaults (each trainer keeps its own), so validating
returns exactly the parameters that were given.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PositiveInt = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(gt=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


class _Params(BaseModel):
    # strict: "4" is not 4 and true is not 1 (a float field still takes an int); NaN is no value
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    # names that mean the same thing to the library; setting both is ambiguous
    SYNONYMS: ClassVar[tuple[tuple[str, str], ...]] = ()


class XGBoostParams(_Params):
    """What `include.training.xgboost_trainer` passes to `xgboost.train` (tree booster)."""

    SYNONYMS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("eta", "learning_rate"), ("lambda", "reg_lambda"), ("alpha", "reg_alpha"), ("gamma", "min_split_loss"))

    num_boost_round: int | None = Field(None, ge=1, le=100_000)
    early_stopping_rounds: int | None = Field(None, ge=0, le=10_000, description="0: no early stopping")
    max_depth: int | None = Field(None, ge=0, le=64, description="0: no limit (lossguide growth)")
    max_leaves: int | None = Field(None, ge=0)
    eta: float | None = Field(None, gt=0.0, le=1.0)
    learning_rate: float | None = Field(None, gt=0.0, le=1.0)
    subsample: Fraction | None = None
    colsample_bytree: Fraction | None = None
    colsample_bylevel: Fraction | None = None
    colsample_bynode: Fraction | None = None
    min_child_weight: NonNegative | None = None
    gamma: NonNegative | None = None
    min_split_loss: NonNegative | None = None
    lambda_: NonNegative | None = Field(None, alias="lambda")
    reg_lambda: NonNegative | None = None
    alpha: NonNegative | None = None
    reg_alpha: NonNegative | None = None
    max_delta_step: NonNegative | None = None
    scale_pos_weight: float | None = Field(None, gt=0.0)
    max_bin: int | None = Field(None, ge=2, le=65_536)
    grow_policy: Literal["depthwise", "lossguide"] | None = None
    tree_method: Literal["hist", "approx", "exact"] | None = None
    seed: int | None = Field(None, ge=0)


class TorchParams(_Params):
    """What `include.training.torch_trainer` reads (an MLP trained with Adam)."""

    hidden: list[PositiveInt] | None = Field(None, max_length=16, description="layer widths")
    epochs: int | None = Field(None, ge=1, le=10_000)
    lr: float | None = Field(None, gt=0.0, le=10.0)
    batch_size: int | None = Field(None, ge=1, le=1_000_000)
    weight_decay: NonNegative | None = None
    patience: int | None = Field(None, ge=0, le=10_000, description="0: no early stopping")
    seed: int | None = Field(None, ge=0)


MODELS: dict[str, type[_Params]] = {"xgboost": XGBoostParams, "pytorch": TorchParams}


@dataclass(frozen=True)
class ParamProblem:
    """One thing wrong with one parameter (`name` is None when it concerns the whole set)."""

    name: str | None
    message: str


def names(framework: str) -> list[str]:
    """The parameter names a framework accepts, as written in specs and configs."""
    return sorted(field.alias or name for name, field in _model(framework).model_fields.items())


def problems(framework: str, params: dict[str, Any]) -> list[ParamProblem]:
    """Everything wrong with `params` for `framework`; empty when they are valid."""
    if not isinstance(params, dict):
        return [ParamProblem(None, f"must be a mapping of parameter names to values, got {type(params).__name__}")]
    model = _model(framework)
    found = [ParamProblem(second, f"is the same parameter as {first!r}: give only one of them")
             for first, second in model.SYNONYMS if first in params and second in params]
    try:
        model.model_validate(params)
    except ValidationError as exc:
        found += [_problem(framework, error) for error in exc.errors(include_url=False, include_input=False)]
    return found


def check(framework: str, params: dict[str, Any]) -> dict[str, Any]:
    """`params` unchanged if valid; else a ValueError listing every problem (callers add where)."""
    found = problems(framework, params)
    if found:
        raise ValueError("; ".join(describe(p) for p in found))
    return dict(params)


def describe(problem: ParamProblem) -> str:
    return f"{problem.name}: {problem.message}" if problem.name else problem.message


def _model(framework: str) -> type[_Params]:
    try:
        return MODELS[framework]
    except KeyError:
        raise ValueError(f"unknown framework {framework!r}; frameworks are {sorted(MODELS)}") from None


def _problem(framework: str, error: Any) -> ParamProblem:
    name = str(error["loc"][0]) if error["loc"] else None
    if error["type"] == "extra_forbidden":
        known = names(framework)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {known}"
        return ParamProblem(name, f"not a {framework} parameter; {hint}")
    message = error["msg"].removeprefix("Value error, ")
    if len(error["loc"]) > 1:  # inside a list, e.g. hidden.1
        name = ".".join(str(part) for part in error["loc"])
    return ParamProblem(name, message)


def trigger_schema(framework: str, name: str) -> dict[str, Any]:
    """The JSON-schema type and bounds of one parameter (what a trigger-form `Param` may allow at most)."""
    properties = _properties(framework)
    if name not in properties:
        raise ValueError(f"{name!r} is not a {framework} parameter")
    field = properties[name]
    branches = [b for b in field.get("anyOf", [field]) if b.get("type") != "null"]
    schema = dict(branches[0]) if branches else {}
    return {k: v for k, v in schema.items() if k in ("type", "minimum", "maximum", "exclusiveMinimum",
                                                      "exclusiveMaximum", "enum", "items", "maxItems")}


@cache
def _properties(framework: str) -> dict[str, Any]:
    return _model(framework).model_json_schema(by_alias=True)["properties"]
