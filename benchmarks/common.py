"""What every benchmark shares: timed child processes, interleaved repetitions, result records.

Each measured run is a fresh child process. The child does its work, times the part being
compared itself and prints one `BENCH-RESULT {json}` line with its own peak resident memory (the
kernel's high-water mark of its address space, and of the children it waited for); the parent adds
the child's wall time and the larger of that peak and its process tree's sampled sum. (Not the
parent's `wait4` figure: Linux carries the forking process's high-water mark into the child's
across exec, so a parent that generated 2.6 GiB of input made every child read 2.6 GiB.) The
sides of a comparison run in turns within each repetition, the order rotating every round, so
that load from other processes on a shared machine falls on all of them alike.

A benchmark module builds `Comparison` records; run alone it prints them as Markdown, under
`benchmarks.run_all` it also writes them as JSON for RESULTS.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT_MARK = "BENCH-RESULT "
OWN_PEAK = "own_peak_rss_mib"  # the child's own peak memory, added to its result line by `report`
RESULTS_DIR_ENV = "SKYLIFT_BENCH_RESULTS"
REPEAT = 5


class BenchError(RuntimeError):
    """A benchmark child failed or printed no result."""


@dataclass(frozen=True)
class ChildRun:
    """One child process: its own timing (`seconds`), wall time, peak RSS and what else it reported."""

    seconds: float
    wall: float
    peak_rss_mib: float  # the child's, or its process tree's summed, whichever is larger
    values: dict


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a name and the command that measures it once."""

    name: str
    argv: Sequence[str]
    env: dict[str, str] | None = None
    cwd: str | None = None


@dataclass
class Row:
    name: str
    seconds: float  # median of the timed part
    wall: float  # median whole-process wall time
    peak_rss_mib: float  # largest peak RSS over the repetitions
    samples: list[float]
    rate: float | None = None  # rows (or items) per second at the median
    note: str = ""


@dataclass
class Comparison:
    """One table: rows measured side by side; ratios are against `baseline`."""

    key: str
    title: str
    command: str
    baseline: str
    rows: list[Row]
    unit: str = "rows"
    notes: list[str] = field(default_factory=list)

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"{self.key}: no row {name!r}; rows are {[r.name for r in self.rows]}")

    def ratio(self, name: str, against: str | None = None) -> float:
        """Time of `name` over time of `against` (the baseline by default): below 1 is faster."""
        return self.row(name).seconds / self.row(against or self.baseline).seconds

    def markdown(self) -> str:
        base = self.row(self.baseline).seconds
        lines = [f"### {self.title}", "", f"`{self.command}`", "",
                 f"| variant | median s | whole process s | peak RSS MiB | {self.unit}/s | time vs baseline |",
                 "|---|---:|---:|---:|---:|---:|"]
        for row in self.rows:
            marker = " (baseline)" if row.name == self.baseline else ""
            rate = f"{row.rate:,.0f}" if row.rate else "-"
            lines.append(f"| {row.name}{marker} | {row.seconds:.3f} | {row.wall:.2f} | {row.peak_rss_mib:,.0f} | "
                         f"{rate} | {row.seconds / base:.2f}x |")
        n = len(self.rows[0].samples) if self.rows else 0
        lines += ["", f"Medians of {n} interleaved repetitions, each a fresh process."]
        if n < REPEAT:
            lines[-1] += f" Fewer than {REPEAT}: for time and memory at this size, not a ratio to quote."
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)


class _TreeMemory(threading.Thread):
    """Samples the summed RSS of a process and all its descendants every 0.2 s; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_mib = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._done.wait(0.2):
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_mib = max(self.peak_mib, total / 2**20)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


def report(**values: object) -> None:
    """In a child: hand the measured values, and its own peak memory, to the parent (one line on stdout)."""
    sys.stdout.flush()
    print(RESULT_MARK + json.dumps({**values, OWN_PEAK: own_peak_mib()}, default=str), flush=True)


def own_peak_mib() -> float:
    """This process's peak RSS since its exec (VmHWM), or that of a child it waited for if larger."""
    import resource

    with open("/proc/self/status") as status:
        hwm_kib = next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    return max(hwm_kib, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def run_child(side: Side, timeout: float = 1800) -> ChildRun:
    """Run one side once; its stdout's result line, its wall time and peak RSS."""
    env = {**os.environ, **(side.env or {})}
    start = time.perf_counter()
    proc = subprocess.Popen(list(side.argv), env=env, cwd=side.cwd or str(ROOT), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    tree = _TreeMemory(proc.pid)
    tree.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise BenchError(f"{side.name}: no result within {timeout:.0f} s") from exc
    finally:
        tree.stop()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError(f"{side.name}: exit {proc.returncode}\n{err[-4000:]}")
    lines = [line for line in out.splitlines() if line.startswith(RESULT_MARK)]
    if not lines:
        raise BenchError(f"{side.name}: printed no {RESULT_MARK.strip()} line\n{out[-2000:]}\n{err[-2000:]}")
    values = json.loads(lines[-1][len(RESULT_MARK):])
    # The larger of the child's own peak (exact) and its process tree's sampled sum (a Spark JVM,
    # a training subprocess: processes that run beside it, which its own figure may not count).
    peak = max(float(values.pop(OWN_PEAK)), tree.peak_mib)
    return ChildRun(seconds=float(values.pop("seconds", wall)), wall=wall, peak_rss_mib=peak, values=values)




def interleave(sides: Sequence[Side], repeat: int = REPEAT, timeout: float = 1800,
               progress: Callable[[str], None] | None = None) -> dict[str, list[ChildRun]]:
    """Each side `repeat` times, in turns; the order rotates each round."""
    runs: dict[str, list[ChildRun]] = {side.name: [] for side in sides}
    for round_ in range(repeat):
        order = [sides[(i + round_) % len(sides)] for i in range(len(sides))]
        for side in order:
            run = run_child(side, timeout)
            runs[side.name].append(run)
            if progress:
                progress(f"  round {round_ + 1}/{repeat} {side.name}: {run.seconds:.3f} s "
                         f"(process {run.wall:.1f} s, {run.peak_rss_mib:,.0f} MiB)")
    return runs


def row_of(name: str, runs: list[ChildRun], items: float | None = None, note: str = "") -> Row:
    seconds = statistics.median(r.seconds for r in runs)
    return Row(name=name, seconds=seconds, wall=statistics.median(r.wall for r in runs),
               peak_rss_mib=max(r.peak_rss_mib for r in runs), samples=[round(r.seconds, 4) for r in runs],
               rate=(items / seconds) if items else None, note=note)


def python_child(module: str, *args: str, python: str | None = None) -> list[str]:
    """argv that runs `python -m module args...` (the project's interpreter unless another is named)."""
    return [python or sys.executable, "-m", module, *args]


def emit(comparisons: Sequence[Comparison]) -> None:
    """Print the tables; under run_all also store them as JSON for RESULTS.md."""
    for comparison in comparisons:
        print(comparison.markdown(), flush=True)
        print(flush=True)
    folder = os.environ.get(RESULTS_DIR_ENV)
    if folder:
        for comparison in comparisons:
            path = Path(folder) / f"{comparison.key}.json"
            path.write_text(json.dumps(asdict(comparison), indent=1))


def load_comparisons(folder: Path) -> dict[str, Comparison]:
    found = {}
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime):  # in the order they ran
        body = json.loads(path.read_text())
        body["rows"] = [Row(**row) for row in body["rows"]]
        found[body["key"]] = Comparison(**body)
    return found


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- in-process timing, for the benchmarks not run by `make bench` (bench_lake) -----------------
def best_of(func: Callable[[], object], repeat: int = 3) -> float:
    """Median wall time of `repeat` runs in this process (after one warm-up run), in seconds."""
    func()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def table(title: str, rows: list[tuple[str, float, float | None]], baseline: str) -> str:
    """Rows of (name, seconds, rows per second or None); speeds against the baseline row."""
    base = next(seconds for name, seconds, _ in rows if name == baseline)
    lines = [f"### {title}", "", "| variant | seconds | rows/s | speed vs baseline |", "|---|---:|---:|---:|"]
    for name, seconds, rate in rows:
        marker = " (baseline)" if name == baseline else ""
        rate_text = f"{rate:,.0f}" if rate else "-"
        lines.append(f"| {name}{marker} | {seconds:.3f} | {rate_text} | {base / seconds:.2f}x |")
    return "\n".join(lines)
