"""`skylift lint`: every problem of every spec, and of the files each spec names, in one pass.

On top of what the loader finds (schema, files, cron, model and trigger parameters, ownership),
lint reads what the spec points at, without Spark, Airflow or the data:

- each schema contract: its keys, column type names, key columns;
- each expectation suite: its keys and policies, expectation names (Great Expectations' own),
  their arguments, and the columns they name against the source's contract;
- the feature job's signature (parsed, not imported) against the sources it will receive;
- the columns `labels:`, `train.key` and `completion.date_column` name, against the contracts.

Every problem is a `SpecProblem` in the file it concerns (a contract's type error points into
the contract), printed as `file:line:col: key: message`.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.contracts import TYPES
from include.errors import SpecError
from include.validation import POLICIES
from operators.spec.loader import inspect_spec, resolve_file
from operators.spec.models import PipelineSpec, SourceBinding
from operators.spec.ownership import SPEC_SUFFIXES
from operators.spec.problems import SpecProblem, SpecProblems
from operators.spec.yaml_source import Location, YamlDocument, load_yaml

CONTRACT_KEYS = ("columns", "key", "allow_extra_columns")
COLUMN_KEYS = ("type", "nullable", "allow_infinity")
SUITE_KEYS = ("name", "description", "expectations")
# Arguments of an expectation that name a column of the validated table.
COLUMN_ARGUMENTS = ("column", "column_A", "column_B")
COLUMN_LIST_ARGUMENTS = ("column_list",)


@dataclass(frozen=True)
class LintResult:
    """One spec's verdict: its pipeline (when it validates) and every problem found."""

    path: Path
    spec: PipelineSpec | None
    problems: tuple[SpecProblem, ...]


def spec_files(targets: Iterable[str | Path]) -> list[Path]:
    """The spec files named: a folder stands for its `*.yaml`/`*.yml` files (not recursive)."""
    found: list[Path] = []
    for target in map(Path, targets):
        if target.is_dir():
            # `_defaults.yaml` (shared settings, checked with each spec that inherits them) is no spec
            found += sorted(p for p in target.iterdir() if p.suffix in SPEC_SUFFIXES and p.is_file()
                            and not p.name.startswith("_"))
        else:
            found.append(target)
    return found


def lint_spec(path: str | Path) -> LintResult:
    if Path(path).name.startswith("_"):  # a folder's shared defaults, named on their own
        from operators.spec.defaults import folder_defaults

        try:
            folder_defaults(Path(path).parent)
        except SpecProblems as exc:
            return LintResult(Path(path), None, exc.problems)
        return LintResult(Path(path), None, ())
    report = inspect_spec(path)
    problems = list(report.problems)
    if report.spec is not None and report.doc is not None:
        problems += _contents(report.doc, report.spec)
    # the spec's own lines first, top to bottom, then each contract and suite it names
    problems.sort(key=lambda p: (p.path != report.path, str(p.path), p.line or 0, p.column or 0))
    return LintResult(Path(path), report.spec, tuple(problems))


def _contents(doc: YamlDocument, spec: PipelineSpec) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    columns: dict[str, set[str] | None] = {}  # source name -> its contract's columns (None: unreadable)
    for binding in spec.source_bindings:
        where = _source_loc(spec, binding)
        columns[binding.name], found = _lint_contract(binding.spec.schema_)
        problems += found
        known = columns[binding.name]
        date_column = binding.spec.completion.date_column
        if known is not None and date_column and date_column not in known:
            problems.append(doc.problem((*where, "completion", "date_column"), _not_a_column(date_column, known,
                                                                                             binding)))
        if binding.validate:
            problems += _lint_suite(binding.validate.suite, known, binding)
    problems += _label_columns(doc, spec, columns)
    problems += _job_signature(doc, spec)
    return problems


def _source_loc(spec: PipelineSpec, binding: SourceBinding) -> Location:
    return ("sources", binding.name) if spec.sources is not None else ("source",)


def _not_a_column(name: str, known: set[str], binding: SourceBinding) -> str:
    return _missing_column(name, known, f"source {binding.name!r} ({binding.spec.schema_})")


def _missing_column(name: str, known: set[str], what: str) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; its columns are {sorted(known)}"
    return f"column {name!r} is not in the contract of {what}{hint}"


def _label_columns(doc: YamlDocument, spec: PipelineSpec, columns: dict[str, set[str] | None]) -> list[SpecProblem]:
    """`labels:` names columns of the label source; `train.key` the entity key every feature source carries."""
    problems = []
    label = spec.label_source
    if spec.labels is not None and label is not None and columns.get(label.name) is not None:
        known = columns[label.name]
        named = [(("labels", "column"), spec.labels.column), (("labels", "as_of"), spec.labels.as_of)]
        named += [(("labels", "key", i), k) for i, k in enumerate(spec.labels.key)]
        problems += [doc.problem(loc, _not_a_column(name, known, label)) for loc, name in named if name not in known]
    if spec.train is not None:
        for binding in spec.feature_sources:
            known = columns.get(binding.name)
            if known is None:
                continue
            problems += [doc.problem(("train", "key", i), _not_a_column(k, known, binding) + " (the job's rows are "
                                     "joined to their outcomes and scored by this key)")
                         for i, k in enumerate(spec.train.key) if k not in known]
            break  # the key comes from the first feature source: the others may be joined differently
        else:
            problems += _shared_key_columns(doc, spec)
    return problems


def _shared_key_columns(doc: YamlDocument, spec: PipelineSpec) -> list[SpecProblem]:
    """Every feature input shared (`reads:`): `train.key` against the first one's contract, its owner's."""
    from operators.spec.ownership import shared_reads

    for read in shared_reads(doc.path).values():
        known = _lint_contract(read.owner.schema)[0] if read.owner.schema else None
        if known is None:
            continue  # the owner's own lint reports an unreadable contract
        what = f"shared dataset {read.claim.name!r} ({read.owner.schema}, owned by pipeline {read.owner.pipeline!r})"
        return [doc.problem(("train", "key", i), _missing_column(k, known, what) + " (the job's rows are joined to "
                            "their outcomes and scored by this key)") for i, k in enumerate(spec.train.key)
                if k not in known]
    return []


# ---- schema contracts ----

def _open(relative: str) -> tuple[YamlDocument | None, list[SpecProblem]]:
    try:
        path = resolve_file(relative)
    except SpecError:
        return None, []  # the loader has reported the path
    if not path.is_file():
        return None, []
    try:
        return load_yaml(path), []
    except SpecProblems as exc:
        return None, list(exc.problems)


def _unknown_keys(doc: YamlDocument, loc: Location, body: dict, allowed: tuple[str, ...], what: str):
    for key in body:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"{what} has {', '.join(allowed)}"
            yield doc.problem((*loc, key), f"unknown key; {hint}")


def _lint_contract(relative: str) -> tuple[set[str] | None, list[SpecProblem]]:
    """The contract's column names (None if it cannot be read) and what is wrong in it."""
    doc, problems = _open(relative)
    if doc is None:
        return None, problems
    body = doc.data
    if not isinstance(body, dict):
        return None, [doc.problem((), "a schema contract must be a mapping with 'columns'")]
    problems += _unknown_keys(doc, (), body, CONTRACT_KEYS, "a contract")
    declared = body.get("columns")
    if not isinstance(declared, dict) or not declared:
        problems.append(doc.problem(("columns",), "must be a mapping of column name to type (e.g. "
                                                  "`customer_id: {type: string, nullable: false}`)"))
        return None, problems
    for name, declared_column in declared.items():
        loc = ("columns", name)
        column = {"type": declared_column} if isinstance(declared_column, str) else declared_column
        if not isinstance(column, dict):
            problems.append(doc.problem(loc, "must be a type name or a mapping with `type:`"))
            continue
        problems += _unknown_keys(doc, loc, column, COLUMN_KEYS, "a column")
        type_name = column.get("type")
        if type_name not in TYPES:
            close = difflib.get_close_matches(str(type_name), sorted(TYPES), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"use one of {sorted(TYPES)}"
            problems.append(doc.problem((*loc, "type"), f"unknown type {type_name!r}; {hint}"))
        elif column.get("allow_infinity") and not type_name.startswith("float"):
            problems.append(doc.problem((*loc, "allow_infinity"), f"only a float column may allow infinity; "
                                                                  f"{name!r} is {type_name}"))
    key = body.get("key") or []
    for index, name in enumerate(key if isinstance(key, list) else [key]):
        if name not in declared:
            close = difflib.get_close_matches(str(name), [str(c) for c in declared], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(doc.problem(("key", index), f"key column {name!r} is not a declared column{hint}"))
    return {str(c) for c in declared}, problems


# ---- expectation suites ----

def _lint_suite(relative: str, columns: set[str] | None, binding: SourceBinding) -> list[SpecProblem]:
    doc, problems = _open(relative)
    if doc is None:
        return problems
    body = doc.data
    if not isinstance(body, dict):
        return [doc.problem((), "an expectation suite must be a mapping with 'expectations'")]
    problems += _unknown_keys(doc, (), body, SUITE_KEYS, "a suite")
    items = body.get("expectations")
    if not isinstance(items, list) or not items:
        return [*problems, doc.problem(("expectations",), "must list at least one expectation")]
    for index, item in enumerate(items):
        problems += _lint_expectation(doc, ("expectations", index), item, columns, binding)
    return problems


def _lint_expectation(doc: YamlDocument, loc: Location, item: Any, columns: set[str] | None,
                      binding: SourceBinding) -> list[SpecProblem]:
    if not isinstance(item, dict):
        return [doc.problem(loc, "must be a mapping: `- expect_...: {arguments}` and an optional `on_failure`")]
    item = dict(item)
    problems = []
    if "on_failure" in item and item.pop("on_failure") not in POLICIES:
        problems.append(doc.problem((*loc, "on_failure"), f"must be one of {list(POLICIES)}"))
    if len(item) != 1:
        return [*problems, doc.problem(loc, f"must name exactly one expectation, got {sorted(map(str, item))}")]
    (name, kwargs), = item.items()
    where = (*loc, name)
    if not isinstance(kwargs, dict):
        return [*problems, doc.problem(where, "takes a mapping of arguments, e.g. `{column: customer_id}`")]
    fields = _expectation_fields(str(name))
    if isinstance(fields, str):
        return [*problems, doc.problem(where, fields)]
    unknown = [arg for arg in kwargs if arg not in fields]
    for arg in unknown:
        close = difflib.get_close_matches(str(arg), sorted(fields), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"it takes {sorted(_public(fields))}"
        problems.append(doc.problem((*where, arg), f"{name} takes no argument {arg!r}; {hint}"))
    if columns is not None:
        problems += _argument_columns(doc, where, kwargs, columns, binding)
    if not unknown:
        problems += [doc.problem(where, message) for message in _argument_errors(str(name), kwargs)]
    return problems


def _argument_columns(doc: YamlDocument, where: Location, kwargs: dict[str, Any], columns: set[str],
                      binding: SourceBinding) -> list[SpecProblem]:
    named = [((*where, arg), kwargs[arg]) for arg in COLUMN_ARGUMENTS if isinstance(kwargs.get(arg), str)]
    for arg in COLUMN_LIST_ARGUMENTS:
        listed = kwargs.get(arg)
        named += [((*where, arg, i), str(c)) for i, c in enumerate(listed if isinstance(listed, list) else [])]
    return [doc.problem(loc, _not_a_column(column, columns, binding)) for loc, column in named if column not in columns]


# Fields every GX expectation has that a suite has no business setting (Skylift sets `meta`).
_INTERNAL_FIELDS = frozenset({"id", "meta", "notes", "rendered_content", "batch_id", "windows", "result_format",
                              "catch_exceptions", "description", "severity"})


def _expectation_fields(name: str) -> set[str] | str:
    """The arguments expectation `name` takes, or why it is no expectation."""
    from include.validation import expectation_class

    try:
        cls = expectation_class(name, where="")
    except SpecError as exc:
        return str(exc).removeprefix(": ")
    return set(getattr(cls, "__fields__", {}))


def _public(fields: set[str]) -> set[str]:
    return fields - _INTERNAL_FIELDS


def _argument_errors(name: str, kwargs: dict[str, Any]) -> list[str]:
    """What Great Expectations says about the arguments (a missing one, a wrong type), as it would at run time."""
    from include.validation import expectation_class

    try:
        expectation_class(name)(**kwargs)
    except Exception as exc:  # GE raises pydantic v1 errors (and its own); each is a suite problem
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return [f"bad arguments {kwargs}: {'; '.join(lines[1:] if len(lines) > 1 else lines)}"]
    return []


# ---- feature job ----

def _job_signature(doc: YamlDocument, spec: PipelineSpec) -> list[SpecProblem]:
    """The job must accept what it is called with: each feature source by name and `ds` (keywords), or for
    the one-source shorthand the frame and `ds` (positionally). Read from the module's syntax tree."""
    if spec.features is None:
        return []
    module, func = spec.features.job.split(":")
    node = _function_node(module, func)
    if node is None:
        return []  # the loader names a missing module or function; an alias or a class is checked at run time
    signature = _signature(node)
    names = list(spec.feature_inputs)  # own feature sources, then the shared ones (`reads:`)
    try:
        if spec.sources is None:
            signature.bind(None, None)
        else:
            signature.bind(**dict.fromkeys(names), ds=None)
    except TypeError as exc:
        called = (f"the sources {names} and 'ds' as keyword arguments" if spec.sources is not None
                  else "the source's frame and 'ds' as positional arguments")
        return [doc.problem(("features", "job"), (
            f"{spec.features.job} (line {node.lineno}) takes {list(signature.parameters)}, but it is called with "
            f"{called} ({exc}); name the job's parameters after the sources"))]
    return []


def _function_node(module: str, func: str) -> ast.FunctionDef | None:
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if found is None or not (found.origin or "").endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(found.origin).read_bytes())
    except (OSError, SyntaxError):
        return None
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == func), None)


def _signature(node: ast.FunctionDef) -> inspect.Signature:
    """The signature `def` declares; defaults stand as None (only their presence matters for binding)."""
    Param = inspect.Parameter
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    first_default = len(positional) - len(args.defaults)
    params = [Param(a.arg, Param.POSITIONAL_ONLY if i < len(args.posonlyargs) else Param.POSITIONAL_OR_KEYWORD,
                    default=None if i >= first_default else Param.empty) for i, a in enumerate(positional)]
    if args.vararg:
        params.append(Param(args.vararg.arg, Param.VAR_POSITIONAL))
    params += [Param(a.arg, Param.KEYWORD_ONLY, default=Param.empty if d is None else None)
               for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg:
        params.append(Param(args.kwarg.arg, Param.VAR_KEYWORD))
    return inspect.Signature(params)
