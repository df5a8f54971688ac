"""The partition manifest: the one file that makes a partition exist.

A partition is published by writing its manifest last. Readers look only at the files the
manifest lists, so files of an unfinished or superseded attempt are invisible to them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

MANIFEST_NAME = "_manifest.json"
MANIFEST_FORMAT = "skylift.manifest/1"


@dataclass(frozen=True)
class FileEntry:
    """One published file: its logical name, its physical name in the partition, and checksums."""

    name: str
    path: str
    bytes: int
    sha256: str
    rows: int | None = None


@dataclass(frozen=True)
class Manifest:
    zone: str
    dataset: str
    ds: str
    attempt: str
    created_at: str
    files: tuple[FileEntry, ...]
    row_count: int
    schema_hash: str | None = None
    run_id: str | None = None
    # What this partition was built from: other partitions' manifests or source files.
    inputs: tuple[dict[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def data_files(self) -> list[FileEntry]:
        return [f for f in self.files if f.path.endswith(".parquet")]

    def file(self, name: str) -> FileEntry:
        for entry in self.files:
            if entry.name == name:
                return entry
        known = ", ".join(f.name for f in self.files) or "none"
        raise KeyError(f"{self.zone}/{self.dataset}/ds={self.ds} has no file named {name!r} (has: {known})")

    def to_json(self) -> str:
        body = asdict(self)
        body["format"] = MANIFEST_FORMAT
        return json.dumps(body, indent=2, sort_keys=True, default=str)

    @property
    def fingerprint(self) -> str:
        """Identifies the partition's content: same files and checksums, same fingerprint."""
        digest = hashlib.sha256()
        for entry in sorted(self.files, key=lambda f: f.name):
            digest.update(f"{entry.name}:{entry.sha256}\n".encode())
        return digest.hexdigest()

    def as_input(self) -> dict[str, Any]:
        """How a downstream manifest records this partition as one of its inputs."""
        return {
            "zone": self.zone,
            "dataset": self.dataset,
            "ds": self.ds,
            "fingerprint": self.fingerprint,
            "row_count": self.row_count,
        }

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        body = json.loads(text)
        fmt = body.pop("format", None)
        if fmt != MANIFEST_FORMAT:
            raise ValueError(f"unknown manifest format {fmt!r}, expected {MANIFEST_FORMAT!r}")
        body["files"] = tuple(FileEntry(**f) for f in body["files"])
        body["inputs"] = tuple(body.get("inputs", ()))
        return cls(**body)
