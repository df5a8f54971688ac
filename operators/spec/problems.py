"""One thing wrong with a spec (or a file it names), located by file, line, column and key.

The loader collects these instead of stopping at the first; `load_spec` raises them together as
one `SpecError`, `skylift lint` prints each as `file:line:col: key: message`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from include.errors import SpecError


@dataclass(frozen=True)
class SpecProblem:
    path: Path
    message: str
    key: str | None = None  # dotted spec key, e.g. `features.job`; None for the file as a whole
    line: int | None = None  # from 1; None when the file has no usable position (unreadable)
    column: int | None = None  # from 1

    def __str__(self) -> str:
        """The loader's message: `file:line: key: message` (no column, as DAG import errors show it)."""
        place = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{place}: {self.key}: {self.message}" if self.key else f"{place}: {self.message}"

    def lint_line(self) -> str:
        """`file:line:col: key: message`, the form editors and CI annotate (a whole-file problem is at 1:1)."""
        where = f"{self.path}:{self.line or 1}:{self.column or 1}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class SpecProblems(SpecError):
    """Problems that stop reading a file (it is not YAML, cannot be read): carried with their position."""

    def __init__(self, problems: list[SpecProblem] | tuple[SpecProblem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
