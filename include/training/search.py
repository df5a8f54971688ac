"""Hyper-parameter search: the search space, the Optuna study the trials share, and the pick of the best.

Airflow-free. A search runs as one task that opens the study (`SearchPlan`), one mapped task per
trial and a selection step. Each trial task claims its point from the study (`claim`), trains in
its own process or pod, and reports its value (`record`); the study lives in storage that every
trial's process reaches: a journal file per study on one machine, or a database URL. The best trial
is chosen from what finished (`best`), so a trial that was killed only loses its own point.

The space is checked against the framework's typed parameters (include/training/params.py): a
range over a name the trainer does not know, or with an end the trainer would refuse, is an error
before any trial runs. Optuna is imported only when a study is opened.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from include.training import params as model_params

if TYPE_CHECKING:
    import optuna

SLOT_ATTR = "skylift_slot"  # trial user attribute: the mapped task index that claimed it
Primitive = int | float | str | bool


class _Range(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def ends(self) -> list[Any]:
        """The values a trainer must accept for the whole range to be valid."""
        raise NotImplementedError


class IntRange(_Range):
    """Whole numbers from `low` to `high`, both included."""

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = Field(False, description="sample on a log scale (low must be >= 1; step 1 only)")

    @model_validator(mode="after")
    def _bounds(self) -> IntRange:
        _ordered(self.low, self.high)
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("a log-scale int range needs low >= 1 and step 1")
        return self

    def ends(self) -> list[Any]:
        return [self.low, self.high]


class FloatRange(_Range):
    """Real numbers from `low` to `high`, uniformly (or in steps of `step`)."""

    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _bounds(self) -> FloatRange:
        _ordered(self.low, self.high)
        return self

    def ends(self) -> list[Any]:
        return [float(self.low), float(self.high)]


class LogFloatRange(_Range):
    """Real numbers from `low` to `high` (both > 0), uniform on a log scale: learning rates, penalties."""

    type: Literal["log_float"]
    low: float = Field(gt=0.0)
    high: float = Field(gt=0.0)

    @model_validator(mode="after")
    def _bounds(self) -> LogFloatRange:
        _ordered(self.low, self.high)
        return self

    def ends(self) -> list[Any]:
        return [float(self.low), float(self.high)]


class Categorical(_Range):
    """One of the listed values (a value may be a list, e.g. a network's layer widths)."""

    type: Literal["categorical"]
    choices: list[Primitive | list[Primitive]] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _distinct(self) -> Categorical:
        encoded = [_encode(c) for c in self.choices]
        if len(set(encoded)) != len(encoded):
            raise ValueError(f"lists a choice twice: {self.choices}")
        return self

    def ends(self) -> list[Any]:
        return list(self.choices)


ParamRange = Annotated[IntRange | FloatRange | LogFloatRange | Categorical, Field(discriminator="type")]


def _ordered(low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("low and high must be finite numbers")
    if low > high:
        raise ValueError(f"low {low} is above high {high}")


def _encode(choice: Any) -> Primitive:
    """What Optuna stores for a choice: itself, or its JSON when it is a list (Optuna keeps primitives)."""
    return json.dumps(choice) if isinstance(choice, list) else choice


# ---- checks against the framework's parameters -------------------------------------------------
@dataclass(frozen=True)
class RangeProblem:
    """One thing wrong with the range of one parameter (`name` None: the space as a whole)."""

    name: str | None
    message: str


def space_problems(framework: str, space: dict[str, ParamRange]) -> list[RangeProblem]:
    """Everything wrong with the ranges for `framework`: unknown names (with "did you mean"),
    ends or choices the trainer would refuse, a float range over an integer parameter."""
    if not space:
        return [RangeProblem(None, "names no parameter to search; give at least one range under params")]
    found = []
    for name, spec in space.items():
        if name not in model_params.names(framework):
            found.append(RangeProblem(name, model_params.problems(framework, {name: None})[0].message))
            continue
        kind = model_params.trigger_schema(framework, name).get("type")
        if kind == "integer" and spec.type in ("float", "log_float"):
            found.append(RangeProblem(name, f"is an integer {framework} parameter: use type int, not {spec.type}"))
            continue
        for value in spec.ends():
            refused = model_params.problems(framework, {name: value})
            if refused:
                label = "choice" if spec.type == "categorical" else "end"
                found.append(RangeProblem(name, f"{label} {value!r} is outside what {framework} accepts: "
                                                f"{refused[0].message}"))
                break
    for first, second in model_params.MODELS[framework].SYNONYMS:
        if first in space and second in space:
            found.append(RangeProblem(second, f"is the same parameter as {first!r}: search only one of them"))
    return found


def check_space(framework: str, space: dict[str, ParamRange]) -> None:
    """ValueError listing every problem of the space (callers add where)."""
    found = space_problems(framework, space)
    if found:
        raise ValueError("; ".join(f"{p.name}: {p.message}" if p.name else p.message for p in found))


# ---- the study --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchPlan:
    """What the trial tasks share: the study, where it is stored, the MLflow parent run, the space.
    Crosses task boundaries as a plain dict (`as_dict` / `from_dict`)."""

    study_name: str
    storage: str
    parent_run_id: str
    experiment: str
    framework: str
    space: dict[str, dict[str, Any]]
    metric: str
    direction: Literal["maximize", "minimize"]
    trials: int
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SearchPlan:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    def ranges(self) -> dict[str, ParamRange]:
        return parse_space(self.space)


def parse_space(raw: dict[str, dict[str, Any]]) -> dict[str, ParamRange]:
    """Ranges from their plain form (`model_dump()` of each, as they cross task boundaries)."""
    from pydantic import TypeAdapter

    adapter = TypeAdapter(ParamRange)
    return {name: adapter.validate_python(spec) for name, spec in raw.items()}


@dataclass(frozen=True)
class ClaimedTrial:
    """A point of the study handed to one trial task: its number and the parameters to train with."""

    number: int
    params: dict[str, Any]
    resumed: bool = False  # the same slot's earlier attempt had claimed it and never reported


def study_name(dag_id: str, run_id: str) -> str:
    """One study per DAG run; readable, and safe as a file name."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{dag_id}.{run_id}")[:150]
    return f"{readable}.{hashlib.sha256(f'{dag_id}/{run_id}'.encode()).hexdigest()[:8]}"


def storage_for(location: str, name: str) -> Any:
    """Optuna storage every trial process can reach. A folder (a path or file://) holds one journal
    file per study, safe for concurrent processes on one machine (file locks); a database URL
    (postgresql://, mysql://, sqlite://) is an RDB storage for workers on several machines."""
    import optuna

    if location.startswith("file://") or "://" not in location:
        folder = Path(location.removeprefix("file://"))
        folder.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(folder / f"{name}.journal")))
    return optuna.storages.RDBStorage(location)


def open_study(plan: SearchPlan, seed_offset: int = 0) -> optuna.Study:
    """The plan's study (created on first use; every trial task opens the same one)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = None if plan.seed is None else plan.seed + seed_offset
    if plan.sampler == "random":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        # Parallel trials: pending points count as bad ones (constant liar), so two trials started
        # together do not both go to the same place; a few random points before the model takes over.
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True,
                                             n_startup_trials=max(2, min(10, plan.trials // 3)))
    return optuna.create_study(study_name=plan.study_name, storage=storage_for(plan.storage, plan.study_name),
                               direction=plan.direction, sampler=sampler, load_if_exists=True)


def distributions(space: dict[str, ParamRange]) -> dict[str, Any]:
    """The space as Optuna distributions."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found: dict[str, Any] = {}
    for name, spec in space.items():
        if isinstance(spec, IntRange):
            found[name] = IntDistribution(spec.low, spec.high, step=spec.step, log=spec.log)
        elif isinstance(spec, FloatRange):
            found[name] = FloatDistribution(spec.low, spec.high, step=spec.step)
        elif isinstance(spec, LogFloatRange):
            found[name] = FloatDistribution(spec.low, spec.high, log=True)
        else:
            found[name] = CategoricalDistribution([_encode(c) for c in spec.choices])
    return found


def decode(space: dict[str, ParamRange], sampled: dict[str, Any]) -> dict[str, Any]:
    """Optuna's values as the trainer takes them (list choices back from their JSON)."""
    out = {}
    for name, raw in sampled.items():
        spec = space[name]
        if isinstance(spec, Categorical):
            out[name] = next(c for c in spec.choices if _encode(c) == raw)
        else:
            out[name] = int(raw) if isinstance(spec, IntRange) else raw
    return out


def claim(study: optuna.Study, plan: SearchPlan, slot: int) -> ClaimedTrial:
    """The point for trial slot `slot`: the one an earlier attempt of the same slot claimed and never
    reported (a retry trains the same point again), else a new point asked from the study."""
    from optuna.trial import TrialState

    space = plan.ranges()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get(SLOT_ATTR) == slot:
            return ClaimedTrial(trial.number, decode(space, trial.params), resumed=True)
    trial = study.ask(distributions(space))
    trial.set_user_attr(SLOT_ATTR, slot)
    return ClaimedTrial(trial.number, decode(space, trial.params))


def record(study: optuna.Study, number: int, value: float | None) -> None:
    """Report a trial's value; None (or not finite) marks it failed, so the sampler stops counting it pending."""
    from optuna.trial import TrialState

    if value is None or not math.isfinite(value):
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    else:
        study.tell(number, value, skip_if_finished=True)


def fail_unfinished(study: optuna.Study) -> list[int]:
    """Mark FAIL the trials still RUNNING once the search is over (their tasks were killed and not
    retried); returns their numbers."""
    from optuna.trial import TrialState

    left = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    for number in left:
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    return left


# ---- choosing the best ------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialOutcome:
    """A finished trial as MLflow recorded it: its run, its number and its value of the search metric."""

    run_id: str
    number: int | None
    value: float | None
    params: dict[str, Any] = field(default_factory=dict)


def best(outcomes: list[TrialOutcome], direction: str) -> TrialOutcome | None:
    """The trial with the best finite value (ties: the lower trial number); None when none has one."""
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    scored = [o for o in outcomes if o.value is not None and math.isfinite(o.value)]
    if not scored:
        return None
    sign = -1.0 if direction == "maximize" else 1.0
    return min(scored, key=lambda o: (sign * o.value, o.number if o.number is not None else math.inf))
