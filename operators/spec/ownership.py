"""Who owns what: each pipeline name, registered model and lake dataset has one spec that writes it.

Two specs in one folder that write the same model or dataset would overwrite each other's
partitions or take over each other's champion, so loading either is refused with both files
and lines. A claim records its access; only two writers conflict, so a spec that *reads* a
dataset another spec owns can be expressed as a `reads` claim.

The index is built at DAG-parse time for every spec file, so it stays cheap: libyaml's node
tree (no Python objects are constructed), only the few keys that name outputs, cached by
file modification time and size. Sibling specs that are not valid YAML are left out here;
their own DAG file shows that error.
"""

from __future__ import annotations

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

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


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
    others = [c for sibling in _siblings(path) for c in claims(sibling) if c.access == "writes"]
    return [(claim, other) for claim in mine for other in others
            if (other.kind, other.name) == (claim.kind, claim.name)]


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


def _siblings(path: Path) -> list[Path]:
    me = path.resolve()
    return sorted(p for p in path.parent.iterdir()
                  if p.suffix in SPEC_SUFFIXES and not p.name.startswith("_") and p.is_file() and p.resolve() != me)


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
    stages = _stages(top.get("dags"))
    out: list[Claim] = []

    def add(kind: str, name: str | None, node: yaml.Node | None, access: Literal["writes", "reads"] = "writes"):
        if name:
            mark = (node or pipeline_node).start_mark
            out.append(Claim(kind, name, access, path, mark.line + 1, pipeline, mark.column + 1))

    add("pipeline", pipeline, pipeline_node)
    if stages & {"ingest", "validate"}:
        for name, node in _raw_datasets(top, pipeline):
            add("raw", name, node)
    if stages & {"features", "train", "score"}:
        features = _mapping(top.get("features")).get("dataset")
        add("features", _scalar(features) or f"{pipeline}_features", features,
            "writes" if "features" in stages else "reads")
    model = _mapping(top.get("register")).get("model_name")
    if stages & {"register", "deploy", "score"}:
        add("model", _scalar(model), model, "writes" if stages & {"register", "deploy"} else "reads")
    if "score" in stages:
        predictions = _mapping(top.get("score")).get("dataset")
        add("predictions", _scalar(predictions) or f"{pipeline}_predictions", predictions)
    return tuple(out) + _custom_claims(top, path, pipeline, stages)


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
                             mark.line + 1, pipeline, mark.column + 1))
    return tuple(out)


def _raw_datasets(top: dict[str, yaml.Node], pipeline: str) -> list[tuple[str, yaml.Node | None]]:
    """The datasets ingest and validate write: `source.dataset` (default: the pipeline name), or
    one per entry of `sources:` (its `dataset`, default: the entry's name)."""
    sources = top.get("sources")
    if isinstance(sources, yaml.MappingNode):
        out = []
        for key_node, value_node in sources.value:
            dataset = _mapping(value_node).get("dataset")
            out.append((_scalar(dataset) or _scalar(key_node), dataset or key_node))
        return out
    dataset = _mapping(top.get("source")).get("dataset")
    return [(_scalar(dataset) or pipeline, dataset)]


def _stages(dags: yaml.Node | None) -> set[str]:
    found: set[str] = set()
    for _, dag in (dags.value if isinstance(dags, yaml.MappingNode) else ()):
        stages = _mapping(dag).get("stages")
        if stages is None or _scalar(stages) == "all":
            found.update(ALL_STAGES)
        elif isinstance(stages, yaml.SequenceNode):
            found.update(s for s in (_scalar(item) for item in stages.value) if s)
    return found


def _mapping(node: yaml.Node | None) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _scalar(node: yaml.Node | None) -> str | None:
    return node.value if isinstance(node, yaml.ScalarNode) and node.value not in ("", "null", "~") else None
