"""Stages a data engineer adds: registered in Python, named and configured in the spec.

A custom stage is a `CustomStage` object in the engineer's own module. It is registered
explicitly, never by a class path in the pipeline YAML: either as a `skylift.stages` entry point
of an installed package (the entry point's name is the stage's name), or by listing its module
under `stage_modules:` in the pipelines folder's `_defaults.yaml` (every `CustomStage` defined at
the top of that module). The spec then puts the stage's name in `dags.<name>.stages` and
configures it under `custom.<stage>`: the partitions it reads (`zone/dataset`), the dataset it
publishes, and its own settings, validated by the stage's pydantic model.

The stage is either a function `fn(inputs: dict[str, pyarrow.Table], ds: str) -> pyarrow.Table`
(given `config=` as well when the stage has a config model), which the framework wraps in
`operators.custom.CustomStageOperator` (ds, rebuild, idempotence, manifest, ownership), or a
`SkyliftOperator` subclass that takes the same keyword arguments and publishes itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from include.errors import SpecError

ENTRY_POINT_GROUP = "skylift.stages"
OUTPUT_ZONES = ("features", "predictions", "reports")  # zones a custom stage may publish into


@dataclass(frozen=True)
class CustomStage:
    name: str
    after: tuple[str, ...]  # stages it runs after (built-in or custom), when they are in the DAG
    before: tuple[str, ...] = ()  # stages that run after it
    fn: Callable[..., Any] | None = None
    operator: type | None = None  # a SkyliftOperator subclass, instead of `fn`
    config: type[BaseModel] | None = None  # validates `custom.<name>.config`
    zone: str = "features"  # where its partition is published
    module: str = ""  # filled in at registration: where the stage is defined

    def __post_init__(self) -> None:
        if (self.fn is None) == (self.operator is None):
            raise SpecError(f"custom stage {self.name!r}: give exactly one of fn= or operator=")
        if self.zone not in OUTPUT_ZONES:
            raise SpecError(f"custom stage {self.name!r}: zone {self.zone!r} is not one of {list(OUTPUT_ZONES)}")

    def parse_config(self, raw: dict[str, Any]) -> BaseModel | None:
        if self.config is None:
            if raw:
                raise SpecError(f"custom stage {self.name!r} takes no config (its definition in {self.module} "
                                "declares no config model)")
            return None
        return self.config.model_validate(raw)


def registered_stages(modules: tuple[str, ...] = ()) -> dict[str, CustomStage]:
    """Every custom stage: the `skylift.stages` entry points, then those defined in `modules`."""
    found: dict[str, CustomStage] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        stage = point.load()
        if not isinstance(stage, CustomStage) or stage.name != point.name:
            raise SpecError(f"entry point {point.name!r} ({point.value}) of group {ENTRY_POINT_GROUP!r} must be a "
                            f"CustomStage named {point.name!r}")
        _add(found, replace(stage, module=point.module), f"entry point {point.value}")
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise SpecError(f"stage module {module_name!r} cannot be imported: {exc}") from exc
        stages = [v for v in vars(module).values() if isinstance(v, CustomStage)]
        if not stages:
            raise SpecError(f"stage module {module_name!r} defines no CustomStage")
        for stage in stages:
            _add(found, replace(stage, module=module_name), f"module {module_name}")
    return found


def _add(found: dict[str, CustomStage], stage: CustomStage, origin: str) -> None:
    from operators.spec.stages import BUILTIN

    if stage.name in BUILTIN:
        raise SpecError(f"custom stage {stage.name!r} ({origin}) has the name of a built-in stage; rename it")
    if stage.name in found and found[stage.name].module != stage.module:
        raise SpecError(f"custom stage {stage.name!r} is defined in both {found[stage.name].module} and {origin}")
    found[stage.name] = stage


def stage_in(module_name: str, name: str) -> CustomStage:
    """The stage `name` as defined in `module_name` (how a worker finds it again)."""
    module = importlib.import_module(module_name)
    for value in vars(module).values():
        if isinstance(value, CustomStage) and value.name == name:
            return value
    raise SpecError(f"module {module_name!r} no longer defines custom stage {name!r}")
