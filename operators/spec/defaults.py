"""Shared defaults for every spec of a pipelines folder: `<folder>/_defaults.yaml`.

It sets what most specs of a team repeat (owner, retries, tags, start_date, the training pod's
resources and Kubernetes settings) and declares the modules whose custom stages the folder's
specs may use (`stage_modules:`). A spec's own value wins: mappings are merged key by key
(`train.resources.gpu` in a spec keeps the default `train.resources.memory`), anything else is
replaced. The file is checked on its own, so an error in it is reported at its own line. Files
whose name starts with `_` are never pipeline specs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from operators.spec.models import KubernetesSpec, ResourcesSpec, Strict
from operators.spec.problems import SpecProblem, SpecProblems
from operators.spec.yaml_source import YamlDocument, load_yaml

DEFAULTS_FILE = "_defaults.yaml"
MODULE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


def is_spec_file(path: Path) -> bool:
    """A pipeline spec: a YAML file whose name does not start with `_` (those are shared settings)."""
    return path.suffix in (".yaml", ".yml") and not path.name.startswith("_")


class TrainDefaults(Strict):
    resources: ResourcesSpec | None = None
    kubernetes: KubernetesSpec | None = None


class DefaultsSpec(Strict):
    owner: str | None = None
    retries: int | None = Field(None, ge=0, le=10)
    tags: list[str] | None = None
    start_date: date | None = None
    train: TrainDefaults | None = None
    stage_modules: list[str] = Field(default_factory=list, description=(
        "modules whose CustomStage objects the specs of this folder may name"))

    @field_validator("stage_modules")
    @classmethod
    def _module_names(cls, modules: list[str]) -> list[str]:
        for module in modules:
            if not re.match(MODULE, module):
                raise ValueError(f"{module!r} is not a module name (like 'myproject.stages')")
        return modules


@dataclass(frozen=True)
class FolderDefaults:
    path: Path | None  # None: the folder has no defaults file
    raw: dict[str, Any] = field(default_factory=dict)
    stage_modules: tuple[str, ...] = ()

    def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        """The spec's data with the defaults under it (the spec's values win)."""
        shared = {k: v for k, v in self.raw.items() if k != "stage_modules"}
        if "train" in shared and "train" not in data:
            shared.pop("train")  # pod settings do not make a spec train
        return _merge(shared, data)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def folder_defaults(folder: Path) -> FolderDefaults:
    """The defaults of a pipelines folder; `SpecProblems` naming the defaults file's lines if it is wrong."""
    path = folder / DEFAULTS_FILE
    if not path.is_file():
        return FolderDefaults(None)
    doc = load_yaml(path)
    if doc.data is None:
        return FolderDefaults(path)
    if not isinstance(doc.data, dict):
        raise SpecProblems([SpecProblem(path, f"shared defaults must be a mapping of keys, got "
                                              f"{type(doc.data).__name__}")])
    try:
        parsed = DefaultsSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecProblems(_problems(doc, exc)) from None
    return FolderDefaults(path, dict(doc.data), tuple(parsed.stage_modules))


def _problems(doc: YamlDocument, exc: ValidationError) -> list[SpecProblem]:
    out = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = (f"unknown key; shared defaults may set {sorted(DefaultsSpec.model_fields)} "
                       "(anything else belongs in each spec)")
        out.append(doc.problem(loc, message))
    return out
