"""Load a pipeline spec: safe YAML -> secret scan -> typed model -> cross-checks -> ownership.

Problems are collected, not raised one at a time: `inspect_spec` returns every one it finds
(`skylift lint` prints them), `load_spec` raises them together as one `SpecError` whose
message has a line per problem, each starting with `<file>:<line>: <key>`.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from include.errors import SpecError
from include.gate_metrics import METRICS
from include.training import params as model_params
from operators.spec.custom_stages import registered_stages
from operators.spec.defaults import folder_defaults
from operators.spec.models import JOB_PATH, DagSpec, ParamSpec, PipelineSpec
from operators.spec.ownership import KINDS, clashes, read_problems
from operators.spec.problems import SpecProblem, SpecProblems
from operators.spec.stages import BUILTIN, RESERVED_PARAMS
from operators.spec.yaml_source import Location, YamlDocument, load_yaml

SECRET_KEYS = re.compile(r"(password|passwd|secret|token|api_?key|access_?key|private_?key|credential)", re.I)
SECRET_VALUES = (
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # an AWS access key id
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),  # credentials inside a URI
)
# Spec keys that *name* a credential store (a Kubernetes Secret) rather than hold a credential.
NAMES_A_SECRET = frozenset({"env_from_secret", "image_pull_secrets"})
DEFAULT_FEATURE_PACKAGES = ("include.features",)
# `dags.<name>.schedule` values besides cron expressions: a DAG run on every new features partition,
# and Airflow's own words (the presets become cron expressions).
ASSET_SCHEDULE = "on_new_features"
SCHEDULE_WORDS = frozenset({ASSET_SCHEDULE, "@once", "@continuous"})
CRON_PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *",
                "@quarterly": "0 0 1 */3 *", "@yearly": "0 0 1 1 *"}


def project_root() -> Path:
    """The folder relative paths in specs resolve against: `SKYLIFT_PROJECT` (a user's project
    folder with `dags/pipelines/`, schemas, suites and feature jobs) or else this repository."""
    chosen = os.environ.get("SKYLIFT_PROJECT", "").strip()
    return Path(chosen).resolve() if chosen else skylift_root()


def skylift_root() -> Path:
    """This repository: the folder holding `include/`."""
    import include

    return Path(include.__file__).resolve().parent.parent


@dataclass(frozen=True)
class SpecReport:
    """What loading a spec found: the typed spec (None if it does not validate) and every problem."""

    path: Path
    spec: PipelineSpec | None
    problems: tuple[SpecProblem, ...]
    doc: YamlDocument | None = None


def load_spec(path: str | Path, *, with_siblings: bool = True) -> PipelineSpec:
    report = inspect_spec(path, with_siblings=with_siblings)
    if report.problems or report.spec is None:
        raise SpecError("\n".join(str(problem) for problem in report.problems))
    return report.spec


def inspect_spec(path: str | Path, *, with_siblings: bool = True) -> SpecReport:
    """Every problem of the spec at `path`, in order: its own (schema, then cross-checks), then
    clashes with the specs beside it (left out with `with_siblings=False`: `skylift rollback
    --pipeline` reading the one of two specs claiming a model that a person chose). A spec that
    does not validate still gets the checks that need only its raw YAML (cron expressions, model
    parameters)."""
    path = Path(path)
    try:
        doc = load_yaml(path)
    except SpecProblems as exc:
        return SpecReport(path, None, exc.problems)
    if not isinstance(doc.data, dict):
        message = f"a pipeline spec must be a mapping of keys, got {type(doc.data).__name__}"
        return SpecReport(path, None, (SpecProblem(doc.path, message),), doc)
    secrets = _secrets(doc)
    if secrets:  # nothing else is reported: later messages could echo the credential
        return SpecReport(path, None, tuple(secrets), doc)
    spec = None
    try:
        defaults = folder_defaults(path.parent)  # the folder's `_defaults.yaml`, under the spec's own values
    except SpecProblems as exc:
        return SpecReport(path, None, exc.problems, doc)
    try:
        spec = PipelineSpec.model_validate(defaults.apply(doc.data))
    except ValidationError as exc:
        problems = _describe(doc, exc)  # the pydantic dump repeats the input
        problems += _check_schedules(doc) + _check_model_params(doc)
    else:
        problems = _cross_check(doc, spec)
    if with_siblings:
        problems += _ownership_clashes(doc) + _shared_read_problems(doc)
    return SpecReport(path, spec, tuple(problems), doc)


def _ownership_clashes(doc: YamlDocument) -> list[SpecProblem]:
    return [SpecProblem(doc.path, f"{KINDS[mine.kind]} {mine.name!r} is also written by {other.where} (pipeline "
                                  f"{other.pipeline!r}); a pipeline name, a model and a dataset each belong to "
                                  "one spec: rename one of them", key=mine.key, line=mine.line, column=mine.column)
            for mine, other in clashes(doc.path)]


def _shared_read_problems(doc: YamlDocument) -> list[SpecProblem]:
    """`reads:` entries checked against the specs beside this one (their owner must exist and validate them)."""
    return [doc.problem(("reads", p.entry, p.key), p.message) for p in read_problems(doc.path)]


def _secrets(doc: YamlDocument) -> list[SpecProblem]:
    found = []
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
        found.append(doc.problem(where, f"{reason}; specs must not hold secrets: keep credentials in an "
                                        "Airflow connection and name it by its id"))
    return found


def _walk(value: Any, loc: Location = ()):
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*loc, key), key, child
            yield from _walk(child, (*loc, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*loc, index), index, child
            yield from _walk(child, (*loc, index))


def _describe(doc: YamlDocument, exc: ValidationError) -> list[SpecProblem]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(_public_name(part) for part in error["loc"] if not str(part).startswith(("literal[", "list[")))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key" + _suggestion(loc)
        problems.append(doc.problem(loc, message))
    return problems


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


def _cross_check(doc: YamlDocument, spec: PipelineSpec) -> list[SpecProblem]:
    problems = []
    for dag_name, dag in spec.dags.items():
        stages = spec.dag_stages(dag)
        where = ("dags", dag_name, "stages")
        for stage in stages:
            if stage not in BUILTIN:
                problems += _check_custom_stage(doc, spec, dag_name, stage)
                continue
            definition = BUILTIN[stage]
            for section in (definition.section, *definition.needs_sections):
                if spec.stage_spec(section) is None:
                    problems.append(doc.problem(where, f"stage {stage!r} needs a top-level {section!r} section"))
                    break
            needed = definition.needs_in_dag
            if needed and needed not in stages:
                problems.append(doc.problem(where, f"stage {stage!r} needs {needed!r} in the same DAG (it takes "
                                                   "over that stage's result)"))
        for clash in sorted(set(dag.params) & RESERVED_PARAMS):
            problems.append(doc.problem(("dags", dag_name, "params", clash), f"{clash!r} is a built-in parameter; "
                                        f"built-ins are {sorted(RESERVED_PARAMS)}"))
    problems += _check_files(doc, spec)
    problems += _check_feature_job(doc, spec)
    problems += _check_gate(doc, spec)
    problems += _check_schedules(doc)
    problems += _check_model_params(doc)
    problems += _check_search(doc, spec)
    for dag_name, dag in spec.dags.items():
        problems += _check_trigger_params(doc, spec, dag_name, dag)
    return problems


def _check_search(doc: YamlDocument, spec: PipelineSpec) -> list[SpecProblem]:
    """`train.search`: its ranges against the framework's parameters, its metric against the task's,
    and a DAG that can run it (on demand, with a train stage)."""
    from include.training import search as hyper_search

    search = spec.train.search if spec.train else None
    if search is None:
        return []
    framework, where = spec.train.framework, ("train", "search")
    problems = [doc.problem((*where, "params", *([found.name] if found.name else ())),
                            f"{found.message} (train.framework is {framework})")
                for found in hyper_search.space_problems(framework, search.params)]
    known = METRICS[spec.train.task]
    if search.metric not in known:
        close = difflib.get_close_matches(search.metric, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(doc.problem((*where, "metric"), f"{search.metric!r} is not a {spec.train.task} metric "
                                                        f"(one of {sorted(known)}){hint}"))
    if not any(dag.schedule is None and "train" in spec.dag_stages(dag) for dag in spec.dags.values()):
        problems.append(doc.problem(where, "no DAG can run the search: it runs in an on-demand DAG (schedule: "
                                           "null) with a train stage; add one, e.g. `retrain`"))
    return problems


def _check_custom_stage(doc: YamlDocument, spec: PipelineSpec, dag_name: str, stage: str) -> list[SpecProblem]:
    """A custom stage must be registered (entry point or `stage_modules:`) and configured under
    `custom.<stage>` with what its own config model accepts."""
    index = spec.dags[dag_name].stage_list.index(stage)
    where = ("dags", dag_name, "stages", index)
    try:
        registry = registered_stages(folder_defaults(doc.path.parent).stage_modules)
    except SpecError as exc:
        return [doc.problem(where, str(exc))]
    if stage not in registry:
        return [doc.problem(where, f"unknown stage {stage!r}; built-in stages are {list(BUILTIN)}, custom stages "
                                   f"registered: {sorted(registry)} (register one with a `skylift.stages` entry "
                                   "point or `stage_modules:` in the folder's _defaults.yaml)")]
    definition = registry[stage]
    known = set(BUILTIN) | set(registry)
    problems = [doc.problem(where, f"custom stage {stage!r} runs after {other!r}, which is no stage")
                for other in (*definition.after, *definition.before) if other not in known]
    if stage not in spec.custom:
        return [*problems, doc.problem(where, f"stage {stage!r} needs a `custom.{stage}` section (reads: "
                                              "[zone/dataset, ...], and its config)")]
    try:
        definition.parse_config(spec.custom[stage].config)
    except ValidationError as exc:
        problems += [doc.problem(("custom", stage, "config", *error["loc"]), error["msg"])
                     for error in exc.errors(include_url=False, include_input=False)]
    except SpecError as exc:
        problems.append(doc.problem(("custom", stage, "config"), str(exc)))
    return problems


def _check_files(doc: YamlDocument, spec: PipelineSpec) -> list[SpecProblem]:
    problems = []
    for loc, relative in spec_files(spec):
        try:
            path = resolve_file(relative)
        except SpecError as exc:
            problems.append(doc.problem(loc, str(exc)))
            continue
        if not path.is_file():
            problems.append(doc.problem(loc, f"file {relative!r} not found (looked at {path})"))
    return problems


def spec_files(spec: PipelineSpec) -> list[tuple[Location, str]]:
    """Each contract and suite the spec names, with the key that names it."""
    files: list[tuple[Location, str]] = []
    if spec.source:
        files.append((("source", "schema"), spec.source.schema_))
    if spec.validate_:
        files.append((("validate", "suite"), spec.validate_.suite))
    for name, source in (spec.sources or {}).items():
        files.append((("sources", name, "schema"), source.schema_))
        if source.validate_:
            files.append((("sources", name, "validate", "suite"), source.validate_.suite))
    return files


def resolve_file(relative: str) -> Path:
    root = project_root()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise SpecError(f"path {relative!r} escapes the project folder {root}")
    return path


def _check_feature_job(doc: YamlDocument, spec: PipelineSpec) -> list[SpecProblem]:
    if not spec.features:
        return []
    module = JOB_PATH.match(spec.features.job).group("module")
    allowed = feature_packages()
    if not any(module == pkg or module.startswith(pkg + ".") for pkg in allowed):
        return [doc.problem(("features", "job"), f"module {module!r} is not in an allowed feature package "
                                                 f"{list(allowed)} (set SKYLIFT_FEATURE_PACKAGES to allow more)")]
    problem = _missing_job(spec.features.job)
    return [doc.problem(("features", "job"), problem)] if problem else []


def _missing_job(job: str) -> str | None:
    """Why the feature job cannot be found, without importing it (that would start Spark's imports)."""
    module, func = job.split(":")
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a parent package is missing or broken
        found = None
    if found is None:
        return f"module {module!r} not found (is the package installed, the name spelled right?)"
    if found.origin and found.origin.endswith(".py"):
        try:
            stat = os.stat(found.origin)
            defined = _top_level_names(found.origin, stat.st_mtime_ns, stat.st_size)
        except (OSError, SyntaxError) as exc:
            return f"module {module!r} cannot be read: {exc}"
        if func not in defined:
            close = difflib.get_close_matches(func, sorted(defined), n=1)
            hint = f"; did you mean {module}:{close[0]}?" if close else ""
            return f"module {module!r} defines no function {func!r}{hint}"
    return None


@functools.lru_cache(maxsize=32)
def _top_level_names(origin: str, mtime_ns: int, size: int) -> frozenset[str]:
    """Functions, assignments and imports at a module's top level, from its source. Cached by the
    file's mtime and size: the specs of a folder often share one feature module."""
    tree = ast.parse(Path(origin).read_bytes())
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    defined |= {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                if isinstance(t, ast.Name)}
    defined |= {(a.asname or a.name) for node in tree.body if isinstance(node, ast.ImportFrom) for a in node.names}
    return frozenset(defined)


def feature_packages() -> tuple[str, ...]:
    extra = os.environ.get("SKYLIFT_FEATURE_PACKAGES", "")
    listed = tuple(p.strip() for p in extra.split(",") if p.strip())
    return DEFAULT_FEATURE_PACKAGES + listed + project_packages()


def project_packages() -> tuple[str, ...]:
    """The user's own packages: folders with `__init__.py` at the top of a project folder other
    than this repository. A name that Python would import from elsewhere (the standard library,
    an installed package, Skylift itself) is not the project's and stays refused."""
    import sys
    from importlib.machinery import PathFinder

    root = project_root()
    if root == skylift_root():
        return ()
    found = []
    for init in sorted(root.glob("*/__init__.py")):
        name = init.parent.name
        if not name.isidentifier() or name in sys.stdlib_module_names:
            continue
        try:
            # Where sys.path finds it now, not a module this process imported earlier from another folder.
            spec = PathFinder.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or (spec.origin and Path(spec.origin).resolve().is_relative_to(root)):
            found.append(name)
    return tuple(found)


def _check_gate(doc: YamlDocument, spec: PipelineSpec) -> list[SpecProblem]:
    if not (spec.deploy and spec.train):
        return []
    known = METRICS[spec.train.task]
    gate = spec.deploy.gate
    problems = []
    for index, metric in enumerate(gate.metric_names):
        if metric in known:
            continue
        close = difflib.get_close_matches(metric, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        at = ("deploy", "gate", "metric") if gate.metric is not None else ("deploy", "gate", "metrics", index, "metric")
        problems.append(doc.problem(at, f"{metric!r} is not a {spec.train.task} metric (one of {sorted(known)}){hint}"))
    return problems


def _check_schedules(doc: YamlDocument) -> list[SpecProblem]:
    """A bad cron would only surface when Airflow builds the timetable, far from the spec line.
    Reads the raw YAML, so a spec with schema errors gets this check too."""
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    problems = []
    dags = doc.data.get("dags")
    for dag_name, dag in (dags.items() if isinstance(dags, dict) else ()):
        schedule = dag.get("schedule") if isinstance(dag, dict) else None
        if not isinstance(schedule, str) or schedule in SCHEDULE_WORDS:
            continue
        try:
            croniter(CRON_PRESETS.get(schedule, schedule))
        except (CroniterBadCronError, CroniterBadDateError, ValueError) as exc:
            problems.append(doc.problem(("dags", dag_name, "schedule"), (
                f"{schedule!r} is not a cron expression ({exc}); use five fields like '0 2 * * *', one of "
                f"{sorted(CRON_PRESETS)}, {ASSET_SCHEDULE!r} or null")))
    return problems


def _check_model_params(doc: YamlDocument) -> list[SpecProblem]:
    """`train.params` against the framework's typed parameters (from the raw YAML, as above)."""
    train = doc.data.get("train")
    if not isinstance(train, dict) or train.get("framework") not in model_params.MODELS:
        return []
    if not isinstance(train.get("params", {}), dict):
        return []  # the schema reports it
    framework = train["framework"]
    problems = []
    for found in model_params.problems(framework, train.get("params", {})):
        loc = ("train", "params", *(found.name.split(".")[:1] if found.name else ()))
        message = found.message if found.name == loc[-1] else model_params.describe(found)
        problems.append(doc.problem(loc, f"{message} (train.framework is {framework})"))
    return problems


def _check_trigger_params(doc: YamlDocument, spec: PipelineSpec, dag_name: str, dag: DagSpec) -> list[SpecProblem]:
    """A DAG's trigger-form params are hyper-parameters of its model, within the model's bounds."""
    problems = []
    for name, param in dag.params.items():
        if name in RESERVED_PARAMS:
            continue  # reported as a built-in
        loc = ("dags", dag_name, "params", name)
        if spec.train is None or "train" not in dag.stage_list:
            problems.append(doc.problem(loc, f"only a DAG with a train stage takes hyper-parameters (stages of "
                                             f"{dag_name!r}: {dag.stage_list})"))
            continue
        problem = _param_problem(spec.train.framework, name, param, spec.train.params.get(name))
        if problem:
            problems.append(doc.problem(loc, problem))
    return problems


def _param_problem(framework: str, name: str, param: ParamSpec, spec_value: Any) -> str | None:
    if name not in model_params.names(framework):
        return model_params.describe(model_params.problems(framework, {name: None})[0])
    schema = model_params.trigger_schema(framework, name)
    # what the form may send must fit the model: an integer field fits no "number" (2.5 would pass the form)
    wanted = {"integer": ("integer", "number"), "number": ("number",), "string": ("string",),
              "boolean": ("boolean",)}[param.type]
    if schema.get("type") not in wanted:
        return f"type {param.type!r} does not fit the {framework} parameter, which is of type {schema.get('type')!r}"
    default = param.default if param.default is not None else spec_value
    if default is None:
        return f"needs a default: give `default:` here or set train.params.{name}"
    return _bounds_problem(framework, name, param, default)


def _bounds_problem(framework: str, name: str, param: ParamSpec, default: Any) -> str | None:
    low, high = param.minimum, param.maximum
    if low is not None and high is not None and low > high:
        return f"minimum {low} is above maximum {high}"
    checks = [("default", default), ("minimum", low), ("maximum", high),
              *(("enum value", v) for v in param.enum or ())]
    for label, value in checks:
        # YAML bounds are floats; an integer parameter's bound 1.0 means 1
        typed = int(value) if param.type == "integer" and isinstance(value, float) and value.is_integer() else value
        found = model_params.problems(framework, {name: typed}) if typed is not None else []
        if found:
            return f"{label} {typed!r} is outside what {framework} accepts: {found[0].message}"
    if (low is not None and default < low) or (high is not None and default > high):
        return f"default {default!r} is outside the bounds [{low}, {high}]"
    if param.enum is not None and default not in param.enum:
        return f"default {default!r} is not one of the enum {param.enum}"
    return None
