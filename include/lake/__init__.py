"""Skylift's data lake: partitioned Parquet published atomically through manifests."""

from include.lake.manifest import FileEntry, Manifest
from include.lake.store import ZONES, Lake, LakeError, PartitionNotFound, check_ds, check_name
from include.lake.verify import PartitionCheck, verify_lake

__all__ = ["ZONES", "FileEntry", "Lake", "LakeError", "Manifest", "PartitionCheck", "PartitionNotFound", "check_ds",
           "check_name", "verify_lake"]
