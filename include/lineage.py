"""Lineage: follow manifests' recorded inputs from any partition back to the raw source files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from include.lake import Lake


@dataclass
class Chain:
    partitions: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # model versions that scored a partition

    def lines(self) -> list[str]:
        """A readable, indented rendering (outputs first, raw files last)."""
        out = []
        for node in self.partitions:
            flag = "" if not node.get("changed") else "  (changed since: rebuilt after this was made)"
            status = f" validation={node['status']}" if node.get("status") else ""
            out.append(f"{node['zone']}/{node['dataset']}/ds={node['ds']} rows={node['row_count']} "
                       f"fingerprint={node['fingerprint'][:12]}{status}{flag}")
        out += [f"scored by {model}" for model in self.models]
        out += [f"source {s['source']} sha256={s['sha256'][:12]} bytes={s['bytes']}" for s in self.sources]
        return out


def trace(lake: Lake, zone: str, dataset: str, dates: list[str]) -> Chain:
    """Everything the given partitions were built from, breadth-first, each partition once."""
    chain = Chain()
    queue: list[tuple[str, str, str, str | None]] = [(zone, dataset, d, None) for d in dates]
    seen: set[tuple[str, str, str]] = set()
    while queue:
        z, name, ds, expected = queue.pop(0)
        if (z, name, ds) in seen:
            continue
        seen.add((z, name, ds))
        manifest = lake.manifest(z, name, ds)
        if manifest is None:
            chain.partitions.append({"zone": z, "dataset": name, "ds": ds, "row_count": 0, "fingerprint": "missing",
                                     "changed": True})
            continue
        chain.partitions.append({
            "zone": z, "dataset": name, "ds": ds, "row_count": manifest.row_count,
            "fingerprint": manifest.fingerprint, "status": manifest.extra.get("status"),
            "changed": expected is not None and expected != manifest.fingerprint,
        })
        for item in manifest.inputs:
            if "zone" in item:
                queue.append((item["zone"], item["dataset"], item["ds"], item.get("fingerprint")))
            elif "model" in item and item["model"] not in chain.models:
                chain.models.append(item["model"])
            elif "source" in item and item not in chain.sources:
                chain.sources.append(item)
    return chain
