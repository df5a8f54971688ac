"""Partitions one pipeline publishes and another reads on purpose (a spec's `reads:`).

The reader never writes them; it trusts a day's partition only once its owner has published it
whole: the manifest exists, names the owner as its writer, and was built from the inputs that are
there now (a re-run of the owner that has re-ingested but not yet re-validated is still under way).
Airflow-free and light to import (DAG files build `SharedPartition`s): the sensor
(operators/sensors.py) and the feature stage both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from include.errors import DamagedPartition, LakeError, PartitionNotFound

if TYPE_CHECKING:  # the compiler builds SharedPartition at parse time: no pyarrow here
    from include.lake import Lake, Manifest


@dataclass(frozen=True)
class SharedPartition:
    """`<zone>/<dataset>` as published by pipeline `owner` (by its DAGs `owner_dags`, declared at `owner_spec`)."""

    owner: str
    dataset: str
    owner_dags: tuple[str, ...] = ()
    owner_spec: str | None = None  # file:line of the owner's declaration
    zone: str = "validated"

    def partition(self, ds: str) -> str:
        return f"{self.zone}/{self.dataset}/ds={ds}"

    @property
    def owned_by(self) -> str:
        """The owner in words: its pipeline, DAGs and where its spec declares the dataset."""
        dags = f"DAG {', '.join(self.owner_dags)}" if self.owner_dags else "none of its DAGs validates it"
        where = f"; declared at {self.owner_spec}" if self.owner_spec else ""
        return f"pipeline {self.owner!r} ({dags}{where})"


@dataclass(frozen=True)
class SharedPartitionState:
    """Whether a day's shared partition can be read, and why not when it cannot."""

    ready: bool
    reason: str
    manifest: Manifest | None = None


def shared_partition_state(lake: Lake, shared: SharedPartition, ds: str) -> SharedPartitionState:
    """The day's shared partition as it is now. Raises `LakeError` only when waiting cannot help:
    another pipeline than its owner wrote it."""
    name = shared.partition(ds)
    try:
        manifest = lake.manifest(shared.zone, shared.dataset, ds)
    except DamagedPartition as exc:  # its owner's retry replaces it
        return SharedPartitionState(False, f"{name} is damaged ({exc}); waiting for {shared.owner!r} to republish it")
    if manifest is None:
        return SharedPartitionState(False, f"{name} is not published yet by {shared.owned_by}")
    check_writer(manifest, shared)
    stale = lake.stale_inputs(manifest)
    if stale:
        return SharedPartitionState(False, (f"{name} is being rebuilt by pipeline {shared.owner!r}: its inputs changed "
                                            f"since it was published ({', '.join(stale)})"), manifest)
    return SharedPartitionState(True, f"{name} published by pipeline {shared.owner!r} (run {manifest.run_id}, "
                                      f"{manifest.row_count} rows)", manifest)


def check_writer(manifest: Manifest, shared: SharedPartition) -> None:
    """Refuse a shared partition that another pipeline than its owner wrote (older manifests name none)."""
    writer = manifest.extra.get("pipeline")
    if writer is not None and writer != shared.owner:
        raise LakeError(f"{shared.partition(manifest.ds)} was written by pipeline {writer!r} (run {manifest.run_id}), "
                        f"but it is shared as {shared.owned_by}'s: two specs claim it; fix the specs' `reads:` and "
                        "`sources:` so that one pipeline owns it")


def require_shared(lake: Lake, shared: SharedPartition, ds: str) -> Manifest:
    """The day's shared partition, or `PartitionNotFound` naming its owner and the DAG that publishes it."""
    state = shared_partition_state(lake, shared, ds)
    if not state.ready:
        raise PartitionNotFound(f"{state.reason}; it is shared, so this pipeline only reads it: run the owner "
                                f"for {ds} first")
    return state.manifest
