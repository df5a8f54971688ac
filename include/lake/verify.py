"""Check published partitions against their manifests: every listed file's size, SHA-256 and row
count (what `skylift verify` runs)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from include.errors import DamagedPartition, LakeError
from include.lake.store import ZONES, Lake, check_ds, check_name, partition_name


@dataclass(frozen=True)
class PartitionCheck:
    """One partition's verdict: intact when `problems` is empty."""

    partition: str
    problems: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return not self.problems


def parse_target(target: str | None) -> tuple[tuple[str, ...], str | None, str | None]:
    """`ZONE[/DATASET[/DS]]` as (zones, dataset, ds); no target means every zone."""
    if not target:
        return ZONES, None, None
    parts = target.strip("/").split("/")
    if len(parts) > 3 or parts[0] not in ZONES:
        raise LakeError(f"cannot verify {target!r}: give ZONE, ZONE/DATASET or ZONE/DATASET/YYYY-MM-DD "
                        f"with ZONE one of {', '.join(ZONES)}")
    dataset = check_name("dataset", parts[1]) if len(parts) > 1 else None
    ds = check_ds(parts[2].removeprefix("ds=")) if len(parts) > 2 else None
    return (parts[0],), dataset, ds


def verify_lake(lake: Lake, target: str | None = None) -> Iterator[PartitionCheck]:
    """Every published partition under `target` (see `parse_target`), checked by content."""
    zones, only_dataset, only_ds = parse_target(target)
    for zone in zones:
        for dataset in [only_dataset] if only_dataset else lake.datasets(zone):
            for ds in [only_ds] if only_ds else lake.published_dates(zone, dataset):
                yield verify_partition(lake, zone, dataset, ds)


def verify_partition(lake: Lake, zone: str, dataset: str, ds: str) -> PartitionCheck:
    name = partition_name(zone, dataset, ds)
    try:
        manifest = lake.manifest(zone, dataset, ds)
    except DamagedPartition as exc:
        return PartitionCheck(name, exc.problems)
    if manifest is None:
        return PartitionCheck(name, ("it was never published (no manifest)",))
    return PartitionCheck(name, tuple(lake.problems(manifest, checksums=True)))
