"""Read a YAML file safely and remember on which line every key sits.

`yaml.safe_load` never builds arbitrary Python objects; a tag such as `!!python/object` is an
error that names the file and line. The line map lets schema errors point at the offending key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from operators.spec.problems import SpecProblem, SpecProblems

Location = tuple[str | int, ...]
# libyaml's parser when the wheel has it: the pure-Python scanner was most of a DAG file's parse time.
# Either way the constructor is the safe one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class YamlDocument:
    path: Path
    data: Any
    lines: dict[Location, int] = field(default_factory=dict)
    columns: dict[Location, int] = field(default_factory=dict)

    def line_of(self, loc: Location) -> int | None:
        """The line of the deepest known key on the way to `loc`."""
        for depth in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:depth]))
            if line is not None:
                return line
        return None

    def position(self, loc: Location) -> tuple[int | None, int | None]:
        """Line and column (from 1) of the deepest known key on the way to `loc`."""
        for depth in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:depth]))
            if line is not None:
                return line, self.columns.get(tuple(loc[:depth]))
        return None, None

    def problem(self, loc: Location, message: str) -> SpecProblem:
        """A problem at `loc`; its text is `where(loc)`, then the message."""
        line, column = self.position(loc)
        key = ".".join(str(part) for part in loc) or "<top>"
        return SpecProblem(self.path, message, key=key, line=line, column=column)

    def where(self, loc: Location) -> str:
        line = self.line_of(loc)
        key = ".".join(str(part) for part in loc) or "<top>"
        return f"{self.path}:{line}: {key}" if line else f"{self.path}: {key}"


def load_yaml(path: Path) -> YamlDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecProblems([SpecProblem(path, f"cannot be read: {exc}")]) from exc
    try:
        _refuse_aliases(path, text)
        node, data = _compose_and_construct(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SpecProblems([SpecProblem(path, f"not valid YAML: {exc.problem or exc}",
                                        line=mark.line + 1 if mark else None,
                                        column=mark.column + 1 if mark else None)]) from exc
    except yaml.YAMLError as exc:
        raise SpecProblems([SpecProblem(path, f"not valid YAML: {exc}")]) from exc
    lines: dict[Location, int] = {}
    columns: dict[Location, int] = {}
    if node is not None:
        _collect_lines(node, (), lines, columns)
    return YamlDocument(path=path, data=data, lines=lines, columns=columns)


def _compose_and_construct(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the Python data, from one parse."""
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _refuse_aliases(path: Path, text: str) -> None:
    """Anchors and aliases let a few lines expand into billions of nodes: specs may not use them."""
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise SpecProblems([SpecProblem(
                path, "YAML anchors and aliases (&name, *name) are not allowed in pipeline specs; write the values out",
                line=event.start_mark.line + 1, column=event.start_mark.column + 1)])


def _collect_lines(node: yaml.Node, loc: Location, lines: dict[Location, int], columns: dict[Location, int]) -> None:
    if loc not in lines:
        lines[loc], columns[loc] = node.start_mark.line + 1, node.start_mark.column + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*loc, key_node.value)
            lines[child], columns[child] = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            _collect_lines(value_node, child, lines, columns)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, (*loc, index), lines, columns)
