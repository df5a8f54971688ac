"""Skylift's data lake: partitioned Parquet published atomically through manifests."""

from include.lake.manifest import FileEntry, Manifest
from include.lake.store import ZONES, Lake, LakeError, PartitionNotFound, check_ds, check_name

__all__ = ["ZONES", "FileEntry", "Lake", "LakeError", "Manifest", "PartitionNotFound", "check_ds", "check_name"]
