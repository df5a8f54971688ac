"""The lake: `<root>/<zone>/<dataset>/ds=YYYY-MM-DD/` partitions published through a manifest.

Commit protocol, the same on a local disk and on S3 (where rename is not atomic):
1. every file of an attempt gets a name unique to the attempt (`part-00000-<attempt>.parquet`);
2. the manifest listing those files is written last, in one atomic step (rename on a local
   disk, a single PUT on S3); readers trust only what a manifest lists;
3. files no manifest lists (older attempts, leftovers of a killed worker) are deleted.
A crash before step 2 leaves the previous partition intact; re-running a date replaces the
partition exactly.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from include.errors import LakeError, PartitionNotFound, StalePartition
from include.lake.manifest import MANIFEST_NAME, FileEntry, Manifest

log = logging.getLogger(__name__)

ZONES = ("raw", "validated", "quarantine", "features", "predictions", "reports")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
READ_ATTEMPTS = 3
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_ds(ds: str) -> str:
    """Return `ds` if it is an ISO date (YYYY-MM-DD), else raise."""
    if isinstance(ds, str) and len(ds) == 10:
        try:
            return date.fromisoformat(ds).isoformat()
        except ValueError:
            pass
    raise LakeError(f"partition date must look like YYYY-MM-DD, got {ds!r}")


def check_name(kind: str, value: str) -> str:
    """Zone and dataset names become path segments: only lowercase identifiers are allowed."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise LakeError(
            f"{kind} name {value!r} is not allowed: use lowercase letters, digits and '_', "
            "starting with a letter (this also keeps every path inside the lake root)"
        )
    return value


def new_attempt_id() -> str:
    """Sortable by start time, unique across workers."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f") + secrets.token_hex(3)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Lake:
    """A lake rooted at `root` (`file:///...`, a plain local path, or `s3://bucket/prefix`).

    `storage_options` go to fsspec (for S3: endpoint, credentials); they are never logged.
    """

    root: str
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        options = dict(self.storage_options)
        if not self.root.startswith(("file:", "/")) and "://" in self.root:
            # Object stores: never answer "does it exist" from a cached listing. Another process
            # may have published since, and the manifest protocol relies on fresh answers.
            options.setdefault("use_listings_cache", False)
        self.fs, base = fsspec.core.url_to_fs(self.root, **options)
        self.base = base.rstrip("/")
        self.is_local = self.fs.protocol in ("file", "local") or "file" in tuple(self.fs.protocol)

    # ---- addresses -------------------------------------------------------------------------
    def partition_path(self, zone: str, dataset: str, ds: str) -> str:
        check_name("zone", zone)
        check_name("dataset", dataset)
        return f"{self.base}/{zone}/{dataset}/ds={check_ds(ds)}"

    def uri(self, path: str) -> str:
        """A URI a person or another tool can open."""
        return f"file://{path}" if self.is_local else f"{_first(self.fs.protocol)}://{path}"

    def partition_uri(self, zone: str, dataset: str, ds: str) -> str:
        return self.uri(self.partition_path(zone, dataset, ds))

    # ---- reading ---------------------------------------------------------------------------
    def manifest(self, zone: str, dataset: str, ds: str) -> Manifest | None:
        """The partition's manifest, or None when the partition was never published."""
        path = f"{self.partition_path(zone, dataset, ds)}/{MANIFEST_NAME}"
        try:
            text = self.fs.cat_file(path).decode()
        except FileNotFoundError:
            return None
        try:
            return Manifest.from_json(text)
        except (ValueError, TypeError, KeyError) as exc:
            raise LakeError(f"manifest {self.uri(path)} is unreadable: {exc}") from exc

    def require(self, zone: str, dataset: str, ds: str) -> Manifest:
        found = self.manifest(zone, dataset, ds)
        if found is None:
            raise PartitionNotFound(
                f"no published partition {zone}/{dataset}/ds={ds} in lake {self.root} "
                "(did the upstream stage run for this date?)"
            )
        return found

    def stale_inputs(self, manifest: Manifest) -> list[str]:
        """Input partitions that were withdrawn or rebuilt since `manifest`'s partition was made."""
        stale = []
        for item in manifest.inputs:
            if "zone" not in item:
                continue
            current = self.manifest(item["zone"], item["dataset"], item["ds"])
            if current is None or current.fingerprint != item.get("fingerprint"):
                state = "withdrawn" if current is None else "rebuilt"
                stale.append(f"{item['zone']}/{item['dataset']}/ds={item['ds']} ({state})")
        return stale

    def require_fresh(self, zone: str, dataset: str, ds: str) -> Manifest:
        """The partition's manifest, if every partition it was built from is still as it was."""
        manifest = self.require(zone, dataset, ds)
        stale = self.stale_inputs(manifest)
        if stale:
            raise StalePartition(
                f"{zone}/{dataset}/ds={ds} was built from data that has since changed: {', '.join(stale)}; "
                "re-run the stage that builds it for this date"
            )
        return manifest

    def partitions(self, zone: str, dataset: str) -> list[str]:
        """Dates of the published partitions of a dataset, oldest first."""
        prefix = f"{self.base}/{check_name('zone', zone)}/{check_name('dataset', dataset)}"
        try:
            entries = self.fs.ls(prefix, detail=False)
        except FileNotFoundError:
            return []
        dates = sorted(e.rstrip("/").rsplit("ds=", 1)[-1] for e in entries if "/ds=" in e)
        return [d for d in dates if self.manifest(zone, dataset, d) is not None]

    def read_table(self, zone: str, dataset: str, ds: str, columns: list[str] | None = None) -> pa.Table:
        """The partition's rows. If a writer replaces the partition while it is being read (its old
        files are removed after the new manifest is out), the new version is read instead."""
        for attempt in range(READ_ATTEMPTS):
            manifest = self.require(zone, dataset, ds)
            try:
                return self._read_files(manifest, columns)
            except FileNotFoundError:
                if attempt == READ_ATTEMPTS - 1:
                    raise
                log.info("%s/%s/ds=%s was replaced while being read; reading the new version", zone, dataset, ds)
        raise AssertionError("unreachable")

    def _read_files(self, manifest: Manifest, columns: list[str] | None) -> pa.Table:
        folder = self.partition_path(manifest.zone, manifest.dataset, manifest.ds)
        tables = [pq.read_table(f"{folder}/{entry.path}", filesystem=self.fs, columns=columns)
                  for entry in manifest.data_files]
        if not tables:
            raise LakeError(f"partition {manifest.zone}/{manifest.dataset}/ds={manifest.ds} lists no data files")
        return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]

    def read_bytes(self, zone: str, dataset: str, ds: str, name: str) -> bytes:
        manifest = self.require(zone, dataset, ds)
        return self.fs.cat_file(f"{self.partition_path(zone, dataset, ds)}/{manifest.file(name).path}")

    def file_uri(self, zone: str, dataset: str, ds: str, name: str) -> str:
        manifest = self.require(zone, dataset, ds)
        return self.uri(f"{self.partition_path(zone, dataset, ds)}/{manifest.file(name).path}")

    @contextmanager
    def local_files(self, zone: str, dataset: str, dates: Iterable[str]) -> Iterator[dict[str, list[str]]]:
        """Local paths of the data files of the given partitions (by date), for engines such as Spark.

        On a local lake these are the files themselves; on S3 they are copies in a temporary
        folder that is removed on exit (Spark on this platform has no S3 connector).
        """
        remote: dict[str, list[str]] = {}
        for ds in dates:
            folder = self.partition_path(zone, dataset, ds)
            remote[ds] = [f"{folder}/{e.path}" for e in self.require(zone, dataset, ds).data_files]
        if self.is_local:
            yield remote
            return
        with tempfile.TemporaryDirectory(prefix="skylift-stage-") as tmp:
            local: dict[str, list[str]] = {}
            for ds, paths in remote.items():
                local[ds] = []
                for path in paths:
                    target = str(Path(tmp) / f"ds={ds}" / Path(path).name)
                    Path(target).parent.mkdir(parents=True, exist_ok=True)
                    self.fs.get_file(path, target)
                    local[ds].append(target)
            yield local

    # ---- writing ---------------------------------------------------------------------------
    @contextmanager
    def publish(self, zone: str, dataset: str, ds: str, **manifest_fields: Any) -> Iterator[PartitionWriter]:
        """Stage files for a partition and publish them together when the block succeeds.

        If the block raises, nothing is published and the staged files are removed; the
        previously published partition (if any) is untouched.
        """
        writer = PartitionWriter(self, zone, dataset, ds, manifest_fields)
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        writer.commit()

    def delete_partition(self, zone: str, dataset: str, ds: str) -> bool:
        """Remove a partition: the manifest first (so readers stop trusting it), then its files."""
        folder = self.partition_path(zone, dataset, ds)
        if not self.fs.exists(folder):
            return False
        manifest_path = f"{folder}/{MANIFEST_NAME}"
        if self.fs.exists(manifest_path):
            self.fs.rm_file(manifest_path)
        self.fs.rm(folder, recursive=True)
        return True

    def _write_manifest(self, folder: str, manifest: Manifest) -> None:
        data = manifest.to_json().encode()
        target = f"{folder}/{MANIFEST_NAME}"
        if self.is_local:
            # Write beside the target, then rename: readers see the old or the new manifest, whole.
            tmp = f"{folder}/.{MANIFEST_NAME}.{manifest.attempt}.tmp"
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
            Path(tmp).replace(target)
        else:
            self.fs.pipe_file(target, data)  # one PUT: atomic on S3


def _first(protocol: str | tuple[str, ...]) -> str:
    return protocol if isinstance(protocol, str) else protocol[0]


class PartitionWriter:
    """Collects the files of one attempt at a partition; see `Lake.publish`."""

    def __init__(self, lake: Lake, zone: str, dataset: str, ds: str, manifest_fields: dict[str, Any]):
        self.lake = lake
        self.zone, self.dataset, self.ds = zone, dataset, ds
        self.folder = lake.partition_path(zone, dataset, ds)
        self.attempt = new_attempt_id()
        self.fields = dict(manifest_fields)
        self.entries: list[FileEntry] = []
        self.schema: pa.Schema | None = None
        lake.fs.makedirs(self.folder, exist_ok=True)

    def write_table(self, table: pa.Table) -> FileEntry:
        """Write one Parquet part file; all parts of a partition must share one schema."""
        if self.schema is not None and not table.schema.equals(self.schema):
            raise LakeError(
                f"part files of {self.zone}/{self.dataset}/ds={self.ds} disagree on schema: "
                f"{self.schema} vs {table.schema}"
            )
        self.schema = table.schema
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        index = len(self.entries)
        name = f"part-{index:05d}.parquet"
        return self._put(name, f"part-{index:05d}-{self.attempt}.parquet", sink.getvalue(), table.num_rows)

    def write_bytes(self, name: str, data: bytes) -> FileEntry:
        """Write a non-tabular file (a report, a plot) under a logical name."""
        if not _FILE_NAME.match(name) or name.endswith(".parquet") or name == MANIFEST_NAME:
            raise LakeError(f"file name {name!r} is not allowed in a partition")
        stem, dot, ext = name.rpartition(".")
        physical = f"{stem}-{self.attempt}.{ext}" if dot else f"{name}-{self.attempt}"
        return self._put(name, physical, data, None)

    def add_parquet_file(self, local_path: str) -> FileEntry:
        """Publish a Parquet file written elsewhere (e.g. by Spark into a local folder)."""
        meta = pq.read_metadata(local_path)
        schema = pq.read_schema(local_path)
        if self.schema is None:
            self.schema = schema
        index = len(self.entries)
        data = Path(local_path).read_bytes()
        return self._put(f"part-{index:05d}.parquet", f"part-{index:05d}-{self.attempt}.parquet", data, meta.num_rows)

    def _put(self, name: str, physical: str, data: bytes, rows: int | None) -> FileEntry:
        if any(e.name == name for e in self.entries):
            raise LakeError(f"file {name!r} written twice to {self.zone}/{self.dataset}/ds={self.ds}")
        self.lake.fs.pipe_file(f"{self.folder}/{physical}", data)
        entry = FileEntry(name=name, path=physical, bytes=len(data), sha256=sha256_bytes(data), rows=rows)
        self.entries.append(entry)
        return entry

    @property
    def row_count(self) -> int:
        return sum(e.rows or 0 for e in self.entries)

    def commit(self) -> Manifest:
        manifest = Manifest(
            zone=self.zone,
            dataset=self.dataset,
            ds=self.ds,
            attempt=self.attempt,
            created_at=datetime.now(UTC).isoformat(),
            files=tuple(self.entries),
            row_count=self.row_count,
            schema_hash=schema_hash(self.schema) if self.schema is not None else None,
            run_id=self.fields.pop("run_id", None),
            inputs=tuple(self.fields.pop("inputs", ())),
            extra=self.fields.pop("extra", {}),
        )
        if self.fields:
            raise LakeError(f"unknown manifest fields: {sorted(self.fields)}")
        missing = [e.path for e in self.entries if not self.lake.fs.exists(f"{self.folder}/{e.path}")]
        if missing:
            raise LakeError(
                f"files of attempt {self.attempt} vanished before publish ({missing}): another "
                f"writer replaced {self.zone}/{self.dataset}/ds={self.ds}; retry the task"
            )
        self.lake._write_manifest(self.folder, manifest)
        self.manifest = manifest
        self._remove_unlisted(keep={e.path for e in self.entries})
        log.info("published %s rows to %s", manifest.row_count, self.lake.uri(self.folder))
        return manifest

    def abort(self) -> None:
        for entry in self.entries:
            try:
                self.lake.fs.rm_file(f"{self.folder}/{entry.path}")
            except FileNotFoundError:
                pass

    def _remove_unlisted(self, keep: set[str]) -> None:
        keep = keep | {MANIFEST_NAME}
        for path in self.lake.fs.ls(self.folder, detail=False):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if name in keep:
                continue
            self.lake.fs.rm(path, recursive=True)


def schema_hash(schema: pa.Schema) -> str:
    """Hash of column names, types and nullability (metadata ignored)."""
    text = "\n".join(f"{f.name}:{f.type}:{f.nullable}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
