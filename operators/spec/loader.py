"""Load a pipeline spec: safe YAML -> secret scan -> typed model -> cross-checks.

Every error is a `SpecError` whose message starts with `<file>:<line>: <key>`.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from include.errors import SpecError
from include.gate import METRICS
from operators.spec.models import JOB_PATH, PipelineSpec
from operators.spec.yaml_source import Location, YamlDocument, load_yaml

SECRET_KEYS = re.compile(r"(password|passwd|secret|token|api_?key|access_?key|private_?key|credential)", re.I)
SECRET_VALUES = (
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # an AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),  # credentials inside a URI
)
# Spec keys that *name* a credential store (a Kubernetes Secret) rather than hold a credential.
NAMES_A_SECRET = frozenset({"env_from_secret"})
# Stages that need another stage in the same DAG (they hand over through XCom, not the lake).
NEEDS_IN_DAG = {"register": "train", "deploy": "register"}
# Sections a stage reads besides its own (scoring needs the model name and the entity key).
NEEDS_SECTIONS = {"register": ("train", "features"), "deploy": ("train", "register", "features"),
                  "score": ("train", "register", "features"), "train": ("features",), "features": ("source",),
                  "evaluate": ("labels", "train", "register")}
DEFAULT_FEATURE_PACKAGES = ("include.features",)
# Trigger-form parameters every DAG may get from the compiler; a spec cannot redefine them.
RESERVED_PARAMS = frozenset({"ds", "rebuild", "train_start", "train_end", "gpu", "force_deploy"})


def project_root() -> Path:
    """Relative paths in specs (`include/schemas/...`) resolve against the folder holding `include/`."""
    import include

    return Path(include.__file__).resolve().parent.parent


def load_spec(path: str | Path) -> PipelineSpec:
    doc = load_yaml(Path(path))
    if not isinstance(doc.data, dict):
        raise SpecError(f"{doc.path}: a pipeline spec must be a mapping of keys, got {type(doc.data).__name__}")
    _reject_secrets(doc)
    try:
        spec = PipelineSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError(_describe(doc, exc)) from None  # the pydantic dump repeats the input
    _cross_check(doc, spec)
    return spec


def _reject_secrets(doc: YamlDocument) -> None:
    for loc, key, value in _walk(doc.data):
        where = loc
        if isinstance(key, str) and any(p.search(key) for p in SECRET_VALUES):
            reason, where = "a key of this mapping looks like a credential", loc[:-1]  # never echo the key
        elif isinstance(key, str) and SECRET_KEYS.search(key) and key not in NAMES_A_SECRET:
            reason = f"key {key!r} looks like a credential"
        elif isinstance(value, str) and any(p.search(value) for p in SECRET_VALUES):
            reason = "the value looks like a credential"
        else:
            continue
        # The value itself is never echoed: error messages end up in logs.
        raise SpecError(
            f"{doc.where(where)}: {reason}; specs must not hold secrets: keep credentials in an "
            "Airflow connection and name it by its id"
        )


def _walk(value: Any, loc: Location = ()):
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*loc, key), key, child
            yield from _walk(child, (*loc, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*loc, index), index, child
            yield from _walk(child, (*loc, index))


def _describe(doc: YamlDocument, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(_public_name(part) for part in error["loc"] if not str(part).startswith(("literal[", "list[")))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key" + _suggestion(loc)
        problems.append(f"{doc.where(loc)}: {message}")
    return "\n".join(problems)


def _public_name(part: Any) -> Any:
    # Fields that shadow Python/pydantic names are stored with a trailing underscore.
    return part[:-1] if isinstance(part, str) and part.endswith("_") else part


def _suggestion(loc: Location) -> str:
    model: type[BaseModel] | None = PipelineSpec
    for part in loc[:-1]:
        model = _child_model(model, part)
        if model is None:
            return ""
    names = [f.alias or n for n, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of {sorted(names)}"


def _child_model(model: type[BaseModel] | None, part: Any) -> type[BaseModel] | None:
    if model is None or isinstance(part, int):
        return model
    for name, field in model.model_fields.items():
        if part in (name, field.alias):
            return _model_in(field.annotation)
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _cross_check(doc: YamlDocument, spec: PipelineSpec) -> None:
    for dag_name, dag in spec.dags.items():
        stages = spec.dag_stages(dag)
        for stage in stages:
            for section in (stage, *NEEDS_SECTIONS.get(stage, ())):
                if spec.stage_spec(section) is None:
                    name = {"ingest": "source", "evaluate": "labels"}.get(section, section)
                    raise SpecError(f"{doc.where(('dags', dag_name, 'stages'))}: stage {stage!r} needs a top-level "
                                    f"{name!r} section")
            needed = NEEDS_IN_DAG.get(stage)
            if needed and needed not in stages:
                raise SpecError(f"{doc.where(('dags', dag_name, 'stages'))}: stage {stage!r} needs {needed!r} in "
                                "the same DAG (it takes over that stage's result)")
        clash = sorted(set(dag.params) & RESERVED_PARAMS)
        if clash:
            raise SpecError(f"{doc.where(('dags', dag_name, 'params', clash[0]))}: {clash[0]!r} is a built-in "
                            f"parameter; built-ins are {sorted(RESERVED_PARAMS)}")
    _check_files(doc, spec)
    _check_feature_job(doc, spec)
    _check_gate(doc, spec)


def _check_files(doc: YamlDocument, spec: PipelineSpec) -> None:
    files = []
    if spec.source:
        files.append((("source", "schema"), spec.source.schema_))
    if spec.validate_:
        files.append((("validate", "suite"), spec.validate_.suite))
    for name, source in (spec.sources or {}).items():
        files.append((("sources", name, "schema"), source.schema_))
        if source.validate_:
            files.append((("sources", name, "validate", "suite"), source.validate_.suite))
    for loc, relative in files:
        try:
            path = resolve_file(relative)
        except SpecError as exc:
            raise SpecError(f"{doc.where(loc)}: {exc}") from None
        if not path.is_file():
            raise SpecError(f"{doc.where(loc)}: file {relative!r} not found (looked at {path})")


def resolve_file(relative: str) -> Path:
    root = project_root()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise SpecError(f"path {relative!r} escapes the project folder {root}")
    return path


def _check_feature_job(doc: YamlDocument, spec: PipelineSpec) -> None:
    if not spec.features:
        return
    module = JOB_PATH.match(spec.features.job).group("module")
    allowed = feature_packages()
    if not any(module == pkg or module.startswith(pkg + ".") for pkg in allowed):
        raise SpecError(f"{doc.where(('features', 'job'))}: module {module!r} is not in an allowed feature "
                        f"package {list(allowed)} (set SKYLIFT_FEATURE_PACKAGES to allow more)")


def feature_packages() -> tuple[str, ...]:
    extra = os.environ.get("SKYLIFT_FEATURE_PACKAGES", "")
    return DEFAULT_FEATURE_PACKAGES + tuple(p.strip() for p in extra.split(",") if p.strip())


def _check_gate(doc: YamlDocument, spec: PipelineSpec) -> None:
    if not (spec.deploy and spec.train):
        return
    known = METRICS[spec.train.task]
    metric = spec.deploy.gate.metric
    if metric not in known:
        close = difflib.get_close_matches(metric, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SpecError(f"{doc.where(('deploy', 'gate', 'metric'))}: {metric!r} is not a {spec.train.task} metric "
                        f"(one of {sorted(known)}){hint}")
