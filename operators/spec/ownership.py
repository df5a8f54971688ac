"""Who owns what: each pipeline name, registered model and lake dataset has one spec that writes it.

Two specs in one folder that write the same model or dataset would overwrite each other's
partitions or take over each other's champion, so loading either is refused with both files
and lines. A claim records its access; only two writers conflict. A spec that *reads* a
dataset another spec owns says so on purpose under `reads:` (`from_pipeline`, `dataset`): the index
records that as a `reads` claim and checks it against the owner (`read_problems`, `shared_reads`).

The index is built at DAG-parse time for every spec file, so it stays cheap: libyaml's node
tree (no Python objects are constructed), only the few keys that name outputs, cached by
file modification time and size. Sibling specs that are not valid YAML are left out here;
their own DAG file shows that error.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from include.errors import SpecError

# libyaml when the wheel has it (about 20x faster than the pure-Python scanner)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SPEC_SUFFIXES = (".yaml", ".yml")
ALL_STAGES = ("ingest", "validate", "features", "train", "register", "deploy", "score")
KINDS = {
    "pipeline": "pipeline name",
    "raw": "raw/validated dataset",
    "features": "features dataset",
    "predictions": "predictions dataset",
    "model": "registered model",
    "custom": "custom stage dataset",
}


@dataclass(frozen=True)
class Claim:
    kind: str  # a key of KINDS
    name: str
    access: Literal["writes", "reads"]
    file: Path
    line: int
    pipeline: str
    column: int = 1
    # a `raw` write: the spec's DAGs that publish its validated partitions (none: never validated)
    dags: tuple[str, ...] = ()
    schema: str | None = None  # a `raw` write: the source's contract (lint checks a reader's key against it)
    # a shared read (`reads.<entry>`): the pipeline it names as the dataset's owner
    entry: str | None = None
    from_pipeline: str | None = None
    key: str = "pipeline"  # the spec key that names it (`pipeline` where the name is derived from it)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def dag_ids(self) -> list[str]:
        return [f"{self.pipeline}_{dag}" for dag in self.dags]


@dataclass(frozen=True)
class SharedRead:
    """A `reads:` entry resolved against the specs beside it: the owner's claim on the dataset."""

    entry: str
    claim: Claim  # this spec's `reads` claim
    owner: Claim  # the owning spec's `writes` claim (its file, line, pipeline and publishing DAGs)


@dataclass(frozen=True)
class ReadProblem:
    """Why a `reads:` entry cannot be used: the key at fault (`from_pipeline` or `dataset`) and what is wrong."""

    entry: str
    key: str
    message: str


_Stamp = tuple[int, int]
_CACHE: dict[Path, tuple[_Stamp, tuple[Claim, ...]]] = {}


def check_ownership(path: str | Path) -> None:
    """Refuse the spec at `path` if a spec beside it writes one of the things it writes."""
    for claim, other in clashes(path)[:1]:
        raise SpecError(
            f"{claim.where}: {KINDS[claim.kind]} {claim.name!r} is also written by {other.where} "
            f"(pipeline {other.pipeline!r}); a pipeline name, a model and a dataset each belong to one "
            f"spec: rename one of them"
        )


def clashes(path: str | Path) -> list[tuple[Claim, Claim]]:
    """Each thing the spec at `path` writes that a spec beside it writes too: (its claim, the other's)."""
    path = Path(path)
    mine = [c for c in claims(path) if c.access == "writes"]
    if not mine:
        return []
    others: dict[tuple[str, str], list[Claim]] = {}
    for other in _sibling_claims(path):
        if other.access == "writes":
            others.setdefault((other.kind, other.name), []).append(other)
    return [(claim, other) for claim in mine for other in others.get((claim.kind, claim.name), ())]


def claims(path: Path) -> tuple[Claim, ...]:
    """What the spec at `path` writes (and reads), from its YAML node tree; cached by mtime and size."""
    try:
        stat = path.stat()
    except OSError:
        return ()
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _CACHE.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    found = _claims_of(path)
    _CACHE[path] = (stamp, found)
    return found


def _sibling_claims(path: Path) -> list[Claim]:
    """The claims of the other spec files in `path`'s folder, in file-name order. Paths are resolved
    only where a symlink could make two names one file."""
    me, path_is_link = None, path.is_symlink()
    found: list[Claim] = []
    for name, is_link, its in _folder_index(path.parent):
        if name == path.name:
            continue
        if path_is_link or is_link:
            me = me or path.resolve()
            if (path.parent / name).resolve() == me:
                continue
        found.extend(its)
    return found


_FolderKey = tuple[tuple[str, bool, _Stamp], ...]
_FOLDERS: dict[Path, tuple[_FolderKey, tuple[tuple[str, bool, tuple[Claim, ...]], ...]]] = {}


def _folder_index(folder: Path) -> tuple[tuple[str, bool, tuple[Claim, ...]], ...]:
    """(file name, is a symlink, its claims) of every spec file in `folder`, sorted by name. Every DAG
    file's parse checks its whole folder, so the index is kept while no file's name, mtime or size
    changed: one directory scan then, and no path objects per file."""
    listed = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if (os.path.splitext(entry.name)[1] in SPEC_SUFFIXES and not entry.name.startswith("_")
                    and entry.is_file()):
                stat = entry.stat()
                listed.append((entry.name, entry.is_symlink(), (stat.st_mtime_ns, stat.st_size)))
    key = tuple(sorted(listed))
    cached = _FOLDERS.get(folder)
    if cached and cached[0] == key:
        return cached[1]
    index = tuple((name, is_link, claims(folder / name)) for name, is_link, _ in key)
    _FOLDERS[folder] = (key, index)
    return index


def _claims_of(path: Path) -> tuple[Claim, ...]:
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ()  # that spec's own DAG file reports it
    top = _mapping(root)
    pipeline_node = top.get("pipeline")
    pipeline = _scalar(pipeline_node)
    if not pipeline:
        return ()
    per_dag = _dag_stages(top.get("dags"))
    stages = set().union(*per_dag.values())
    out: list[Claim] = []

    def add(kind: str, name: str | None, node: yaml.Node | None, key: str,
            access: Literal["writes", "reads"] = "writes") -> None:
        if name:
            mark = (node or pipeline_node).start_mark
            out.append(Claim(kind, name, access, path, mark.line + 1, pipeline, mark.column + 1,
                             key=key if node else "pipeline"))

    add("pipeline", pipeline, pipeline_node, "pipeline")
    if stages & {"ingest", "validate"}:
        publishing = tuple(dag for dag, its in per_dag.items() if "validate" in its)
        for name, node, key, source in _raw_datasets(top, pipeline):
            mark = (node or pipeline_node).start_mark
            out.append(Claim("raw", name, "writes", path, mark.line + 1, pipeline, mark.column + 1,
                             dags=publishing if _given(source.get("validate")) else (),
                             schema=_scalar(source.get("schema")), key=key))
    if stages & {"features", "train", "score"}:
        features = _mapping(top.get("features")).get("dataset")
        add("features", _scalar(features) or f"{pipeline}_features", features, "features.dataset",
            "writes" if "features" in stages else "reads")
    model = _mapping(top.get("register")).get("model_name")
    if stages & {"register", "deploy", "score"}:
        add("model", _scalar(model), model, "register.model_name",
            "writes" if stages & {"register", "deploy"} else "reads")
    if "score" in stages:
        predictions = _mapping(top.get("score")).get("dataset")
        add("predictions", _scalar(predictions) or f"{pipeline}_predictions", predictions, "score.dataset")
    return tuple(out) + _custom_claims(top, path, pipeline, stages) + _read_claims(top, path, pipeline)


def _read_claims(top: dict[str, yaml.Node], path: Path, pipeline: str) -> tuple[Claim, ...]:
    """`reads.<entry>: {from_pipeline, dataset}`: a raw/validated dataset another spec owns, read on purpose."""
    reads = top.get("reads")
    if not isinstance(reads, yaml.MappingNode):
        return ()
    out = []
    for key_node, value_node in reads.value:
        entry = _mapping(value_node)
        dataset = entry.get("dataset")
        name = _scalar(dataset)
        if isinstance(key_node, yaml.ScalarNode) and name:
            mark = dataset.start_mark
            out.append(Claim("raw", name, "reads", path, mark.line + 1, pipeline, mark.column + 1,
                             entry=key_node.value, from_pipeline=_scalar(entry.get("from_pipeline"))))
    return tuple(out)


def shared_reads(path: str | Path) -> dict[str, SharedRead]:
    """Each `reads:` entry of the spec at `path` whose dataset a spec beside it owns, by entry name."""
    path = Path(path)
    owners = _raw_owners(path)
    return {c.entry: SharedRead(c.entry, c, owners[c.name]) for c in claims(path)
            if c.access == "reads" and c.entry and c.name in owners}


def read_problems(path: str | Path) -> list[ReadProblem]:
    """What is wrong with the `reads:` entries of the spec at `path`: a pipeline no spec beside it
    declares, a dataset its named owner does not ingest (or that no spec owns), one never validated."""
    path = Path(path)
    mine = [c for c in claims(path) if c.access == "reads" and c.entry]
    if not mine:
        return []
    owners = _raw_owners(path)
    pipelines = {c.name: c for c in _sibling_claims(path) if c.kind == "pipeline"}
    problems = []
    for claim in mine:
        problem = _read_problem(claim, owners, pipelines)
        if problem is not None:
            problems.append(problem)
    return problems


def _read_problem(claim: Claim, owners: dict[str, Claim], pipelines: dict[str, Claim]) -> ReadProblem | None:
    named, entry = claim.from_pipeline, claim.entry or ""
    owner = owners.get(claim.name)
    if named not in pipelines:
        close = difflib.get_close_matches(named or "", sorted(pipelines), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; pipelines beside it: {sorted(pipelines)}"
        return ReadProblem(entry, "from_pipeline", f"no spec beside this one declares pipeline {named!r}{hint}")
    if owner is None or owner.pipeline != named:
        if owner is not None:
            return ReadProblem(entry, "dataset", (
                f"dataset {claim.name!r} is owned by pipeline {owner.pipeline!r} ({owner.where}), not {named!r}; "
                f"set from_pipeline: {owner.pipeline}"))
        theirs = sorted(c.name for c in owners.values() if c.pipeline == named)
        close = difflib.get_close_matches(claim.name, theirs, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"its datasets: {theirs}"
        return ReadProblem(entry, "dataset", (
            f"no spec beside this one ingests dataset {claim.name!r}, so nothing would ever publish it; pipeline "
            f"{named!r} ({pipelines[named].where}) owns no such dataset: {hint}"))
    if not owner.dags:
        return ReadProblem(entry, "dataset", (
            f"pipeline {named!r} ingests {claim.name!r} ({owner.where}) but none of its DAGs validates it, so "
            f"validated/{claim.name} is never published: give that source a `validate:` and a DAG that runs "
            "`validate`"))
    return None


def _raw_owners(path: Path) -> dict[str, Claim]:
    """Raw/validated dataset -> the `writes` claim of the spec beside `path` that ingests it."""
    return {c.name: c for c in _sibling_claims(path) if c.kind == "raw" and c.access == "writes"}


def _custom_claims(top: dict[str, yaml.Node], path: Path, pipeline: str, stages: set[str]) -> tuple[Claim, ...]:
    """What the custom stages a DAG runs publish: `custom.<stage>.dataset`, default `<pipeline>_<stage>`."""
    custom = top.get("custom")
    if not isinstance(custom, yaml.MappingNode):
        return ()
    out = []
    for key_node, value_node in custom.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value in stages:
            dataset = _mapping(value_node).get("dataset")
            mark = (dataset or key_node).start_mark
            out.append(Claim("custom", _scalar(dataset) or f"{pipeline}_{key_node.value}", "writes", path,
                             mark.line + 1, pipeline, mark.column + 1,
                             key=f"custom.{key_node.value}" + (".dataset" if dataset else "")))
    return tuple(out)


def _raw_datasets(top: dict[str, yaml.Node], pipeline: str) -> list[tuple[str, yaml.Node | None, str, dict]]:
    """The datasets ingest and validate write: `source.dataset` (default: the pipeline name), or
    one per entry of `sources:` (its `dataset`, default: the entry's name); each with the node and
    spec key naming it and its source's keys (`validate`: only then is a `validated/` partition
    published; `schema`: its contract)."""
    sources = top.get("sources")
    if isinstance(sources, yaml.MappingNode):
        out = []
        for key_node, value_node in sources.value:
            source = _mapping(value_node)
            dataset = source.get("dataset")
            key = f"sources.{_scalar(key_node)}" + (".dataset" if dataset else "")
            out.append((_scalar(dataset) or _scalar(key_node), dataset or key_node, key, source))
        return out
    source = _mapping(top.get("source"))
    dataset = source.get("dataset")
    return [(_scalar(dataset) or pipeline, dataset, "source.dataset" if dataset else "pipeline",
             {**source, "validate": top.get("validate")})]


def _dag_stages(dags: yaml.Node | None) -> dict[str, set[str]]:
    """Each DAG's stages, by DAG name (`all` or no list: every built-in stage)."""
    found: dict[str, set[str]] = {}
    for key, dag in (dags.value if isinstance(dags, yaml.MappingNode) else ()):
        stages = _mapping(dag).get("stages")
        its = found.setdefault(str(_scalar(key)), set())
        if stages is None or _scalar(stages) == "all":
            its.update(ALL_STAGES)
        elif isinstance(stages, yaml.SequenceNode):
            its.update(s for s in (_scalar(item) for item in stages.value) if s)
    return found


def _given(node: yaml.Node | None) -> bool:
    return node is not None and not (isinstance(node, yaml.ScalarNode) and _scalar(node) is None)


def _mapping(node: yaml.Node | None) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _scalar(node: yaml.Node | None) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) and node.value not in ("", "null", "~") else None
