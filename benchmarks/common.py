"""Small helpers shared by the benchmarks: repeated timing and a ratio table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def best_of(func: Callable[[], object], repeat: int = 3) -> float:
    """Median wall time of `repeat` runs (after one warm-up run), in seconds."""
    func()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def table(title: str, rows: list[tuple[str, float, float | None]], baseline: str) -> str:
    """Rows of (name, seconds, rows per second or None); ratios against the baseline row."""
    base = next(seconds for name, seconds, _ in rows if name == baseline)
    lines = [f"### {title}", "", "| variant | seconds | rows/s | speed vs baseline |", "|---|---:|---:|---:|"]
    for name, seconds, rate in rows:
        marker = " (baseline)" if name == baseline else ""
        rate_text = f"{rate:,.0f}" if rate else "-"
        lines.append(f"| {name}{marker} | {seconds:.3f} | {rate_text} | {base / seconds:.2f}x |")
    return "\n".join(lines)
