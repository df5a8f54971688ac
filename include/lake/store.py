"""The lake: `<root>/<zone>/<dataset>/ds=YYYY-MM-DD/` partitions published through a manifest.

Commit protocol, the same on a local disk and on S3 (where rename is not atomic):
1. a writer notes the partition's current manifest generation when it starts (a hash of the
   manifest's bytes on local disk, its ETag on S3; none if unpublished);
2. every file of an attempt gets a name unique to the attempt (`part-00000-<attempt>.parquet`,
   attempt ids sort by start time);
3. the manifest listing those files is written last, as a compare-and-set against the noted
   generation: under an exclusive `flock` on the partition folder, then rename, on local disk; a
   conditional PUT (`If-Match: <etag>`, or `If-None-Match: *` for a first publish) on S3. Readers
   trust only what a manifest lists;
4. clean-up removes the files of the manifest it replaced (that writer has finished), and any
   other file only if the new manifest does not list it, its attempt started before this one,
   and the store says it was last written before the new manifest (leftovers of killed or
   losing attempts). A writer that started after this one, or after the publish, never loses a
   staged file, even with its clock behind.
A writer that loses the compare-and-set publishes nothing, removes its own files and raises
`PublishConflict` naming the winner. It does not publish on top: its rows were built from inputs
read before the winner published, so they may be older than the winner's. The task's retry
re-checks (`SkyliftOperator.unchanged`): it keeps the winner's partition when built from the same
inputs, else rebuilds on top of it. A crash before step 3 leaves the previous partition intact.

Reads check the files against the manifest: sizes always (one listing of the partition folder),
SHA-256 and row counts when asked (`verify=True`, or `Lake(verify_checksums=True)`). A mismatch,
a missing file or an unreadable manifest raises `DamagedPartition` naming the partition.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import os
import queue
import random
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fsspec
import fsspec.asyn
import pyarrow as pa
import pyarrow.parquet as pq

from include.errors import DamagedPartition, LakeError, PartitionNotFound, PublishConflict, StalePartition
from include.lake.manifest import MANIFEST_NAME, FileEntry, Manifest

log = logging.getLogger(__name__)

ZONES = ("raw", "validated", "quarantine", "features", "predictions", "reports", "evaluations")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
READ_ATTEMPTS = 3
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ATTEMPT = re.compile(r"\d{8}T\d{12}[0-9a-f]{6}")
# S3 answers for a conditional PUT that lost: the ETag changed (412), a concurrent conditional
# write to the key (409), or the manifest was deleted meanwhile (404 on If-Match).
_LOST_RACE_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404"}


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
    `verify_checksums` makes every read check SHA-256 and row counts too, not just sizes.
    """

    root: str
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)
    verify_checksums: bool = False

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
        _, data = self._read_manifest_file(self.partition_path(zone, dataset, ds))
        if data is None:
            return None
        try:
            manifest = Manifest.from_json(data.decode())
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise DamagedPartition(partition_name(zone, dataset, ds),
                                   [f"its manifest {self.uri(path)} is unreadable ({exc})"]) from exc
        if (manifest.zone, manifest.dataset, manifest.ds) != (zone, dataset, ds):
            described = partition_name(manifest.zone, manifest.dataset, manifest.ds)
            raise DamagedPartition(partition_name(zone, dataset, ds), [
                f"its manifest {self.uri(path)} describes {described} (copied from another partition?)"])
        return manifest

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
        return [d for d in self._partition_folders(zone, dataset) if self.manifest(zone, dataset, d) is not None]

    def read_table(self, zone: str, dataset: str, ds: str, columns: list[str] | None = None,
                   verify: bool | None = None) -> pa.Table:
        """The partition's rows, after checking its files' sizes (and, with `verify`, checksums and
        row counts) against the manifest. If a writer replaces the partition while it is being read
        (its old files are removed after the new manifest is out), the new version is read instead."""
        checksums = self.verify_checksums if verify is None else verify
        return self._read_published(zone, dataset, ds, lambda m: self._read_files(m, columns, checksums))

    def read_bytes(self, zone: str, dataset: str, ds: str, name: str) -> bytes:
        """One file's bytes, checked against the manifest's size and SHA-256 (it is in hand anyway)."""

        def read(manifest: Manifest) -> bytes:
            entry = manifest.file(name)
            data = self.fs.cat_file(f"{self.partition_path(zone, dataset, ds)}/{entry.path}")
            self._raise_if_damaged(manifest, _listed(_content_problem(entry, data)))
            return data

        return self._read_published(zone, dataset, ds, read)

    def _read_published(self, zone: str, dataset: str, ds: str, read: Any) -> Any:
        """`read(manifest)`, again on the new version if the partition is replaced meanwhile; damage
        that is still there under the same manifest is reported as such."""
        manifest = self.require(zone, dataset, ds)
        for _ in range(READ_ATTEMPTS):
            try:
                return read(manifest)
            except (FileNotFoundError, DamagedPartition) as exc:
                current = self.require(zone, dataset, ds)
                if current.attempt == manifest.attempt:
                    if isinstance(exc, DamagedPartition):
                        raise
                    raise self._damage(manifest, [f"a file it lists is missing ({exc})"]) from exc
                log.info("%s was replaced while being read; reading the new version", partition_name(zone, dataset, ds))
                manifest = current
        raise LakeError(f"{partition_name(zone, dataset, ds)} was replaced {READ_ATTEMPTS} times while being read; "
                        "retry the task")

    def _read_files(self, manifest: Manifest, columns: list[str] | None, checksums: bool) -> pa.Table:
        if not manifest.data_files:
            raise LakeError(f"partition {manifest.zone}/{manifest.dataset}/ds={manifest.ds} lists no data files")
        self._raise_if_damaged(manifest, self._size_problems(manifest))
        folder = self.partition_path(manifest.zone, manifest.dataset, manifest.ds)
        tables = []
        for entry in manifest.data_files:
            if checksums:  # read once: hash the bytes, then parse them
                data = self.fs.cat_file(f"{folder}/{entry.path}")
                self._raise_if_damaged(manifest, _listed(_content_problem(entry, data)))
                tables.append(pq.read_table(io.BytesIO(data), columns=columns))
            else:
                tables.append(pq.read_table(f"{folder}/{entry.path}", filesystem=self.fs, columns=columns))
        return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]

    # ---- checking ---------------------------------------------------------------------------
    def problems(self, manifest: Manifest, checksums: bool = False) -> list[str]:
        """What no longer matches `manifest`: sizes from one listing, plus SHA-256 and Parquet row
        counts (every file read) when `checksums`. Empty when the partition is intact."""
        by_file = self._file_size_problems(manifest)
        if checksums:
            folder = self.partition_path(manifest.zone, manifest.dataset, manifest.ds)
            for entry in manifest.files:
                problem = None if entry.name in by_file else _content_problem(
                    entry, self.fs.cat_file(f"{folder}/{entry.path}"))
                if problem:
                    by_file[entry.name] = problem
        return [by_file[e.name] for e in manifest.files if e.name in by_file] + _row_count_problems(manifest)

    def check(self, manifest: Manifest, checksums: bool | None = None) -> Manifest:
        """`manifest` if its partition is intact, else `DamagedPartition` naming every problem."""
        checksums = self.verify_checksums if checksums is None else checksums
        self._raise_if_damaged(manifest, self.problems(manifest, checksums))
        return manifest

    def _size_problems(self, manifest: Manifest) -> list[str]:
        return list(self._file_size_problems(manifest).values()) + _row_count_problems(manifest)

    def _file_size_problems(self, manifest: Manifest) -> dict[str, str]:
        """Listed files that are missing or of another size, by logical name (one folder listing)."""
        listing = self._listing(self.partition_path(manifest.zone, manifest.dataset, manifest.ds))
        found = {}
        for entry in manifest.files:
            info = listing.get(entry.path)
            if info is None:
                found[entry.name] = f"{entry.name} is missing (deleted?)"
            elif info.get("size") != entry.bytes:
                found[entry.name] = _size_problem(entry, info.get("size"))
        return found

    def _raise_if_damaged(self, manifest: Manifest, problems: list[str]) -> None:
        if problems:
            raise self._damage(manifest, problems)

    @staticmethod
    def _damage(manifest: Manifest, problems: list[str]) -> DamagedPartition:
        return DamagedPartition(partition_name(manifest.zone, manifest.dataset, manifest.ds), problems)

    def _listing(self, folder: str) -> dict[str, dict[str, Any]]:
        """The partition folder's entries by file name, with sizes and modification times."""
        try:
            entries = self.fs.ls(folder, detail=True)
        except FileNotFoundError:
            return {}
        return {entry["name"].rstrip("/").rsplit("/", 1)[-1]: entry for entry in entries}

    def datasets(self, zone: str) -> list[str]:
        """Names of the datasets that have a folder in `zone`."""
        try:
            entries = self.fs.ls(f"{self.base}/{check_name('zone', zone)}", detail=False)
        except FileNotFoundError:
            return []
        names = (e.rstrip("/").rsplit("/", 1)[-1] for e in entries)
        return sorted(n for n in names if _NAME.match(n))

    def published_dates(self, zone: str, dataset: str) -> list[str]:
        """Dates whose folder holds a manifest, readable or not (what `skylift verify` checks)."""
        return [d for d in self._partition_folders(zone, dataset)
                if MANIFEST_NAME in self._listing(self.partition_path(zone, dataset, d))]

    def _partition_folders(self, zone: str, dataset: str) -> list[str]:
        """Dates of the `ds=` folders of a dataset, oldest first, published or not."""
        prefix = f"{self.base}/{check_name('zone', zone)}/{check_name('dataset', dataset)}"
        try:
            entries = self.fs.ls(prefix, detail=False)
        except FileNotFoundError:
            return []
        return sorted(e.rstrip("/").rsplit("ds=", 1)[-1] for e in entries if "/ds=" in e)

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
            manifest = self.check(self.require(zone, dataset, ds))
            remote[ds] = [f"{folder}/{e.path}" for e in manifest.data_files]
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

    def amend(self, zone: str, dataset: str, ds: str, files: Mapping[str, bytes], attempts: int = 16,
              **manifest_fields: Any) -> Manifest:
        """Publish the partition with `files` added to (or replacing same-named files of) what it
        holds: for partitions several runs add to on one date, such as the gate reports of every
        version gated that day. The other files are carried as they are, so their URIs stay valid;
        a concurrent writer that wins the publish makes this one start again on top of it, after a
        random pause that grows with each loss (without it, writers that lost together retried
        together, and one could lose every round)."""
        for attempt in range(attempts):
            if attempt:
                time.sleep(random.uniform(0, min(0.02 * 2 ** attempt, 1.0)))  # noqa: S311 - spreading retries
            try:
                with self.publish(zone, dataset, ds, **dict(manifest_fields)) as writer:
                    try:
                        current = self.manifest(zone, dataset, ds)
                    except DamagedPartition as exc:
                        log.warning("%s; replacing it with only the new files", exc)
                        current = None
                    for entry in current.files if current else ():
                        if entry.name not in files:
                            writer.carry(entry)
                    for name, data in files.items():
                        writer.write_bytes(name, data)
                return writer.manifest
            except PublishConflict:
                log.info("another writer published %s meanwhile; adding to its version",
                         partition_name(zone, dataset, ds))
        raise PublishConflict(f"{partition_name(zone, dataset, ds)} was published by others {attempts} times while "
                              "this writer added to it; nothing was added; retry the task")

    def delete_partition(self, zone: str, dataset: str, ds: str) -> bool:
        """Withdraw a partition: the manifest first (so readers stop trusting it), then the files it
        listed. Files a writer is staging meanwhile are its own; leftovers go with the next publish.
        False when there was no published partition."""
        folder = self.partition_path(zone, dataset, ds)
        if self.is_local:
            if not os.path.isdir(folder):
                return False
            handle = os.open(folder, os.O_RDONLY)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)  # not between a publisher's check and its rename
                return self._withdraw(folder)
            finally:
                os.close(handle)
        return self._withdraw(folder)

    def _withdraw(self, folder: str) -> bool:
        generation, listed = self._published_state(folder)
        if generation is None:
            return False
        self.fs.rm_file(f"{folder}/{MANIFEST_NAME}")
        for path in listed:
            try:
                self.fs.rm_file(f"{folder}/{path}")
            except FileNotFoundError:
                pass
        return True

    def generation(self, zone: str, dataset: str, ds: str) -> str | None:
        """Identifies the partition's current manifest (None if unpublished); changes on every publish."""
        return self._generation(self.partition_path(zone, dataset, ds))

    def _generation(self, folder: str) -> str | None:
        return self._read_manifest_file(folder)[0]

    def _read_manifest_file(self, folder: str) -> tuple[str | None, bytes | None]:
        """The manifest's generation and bytes, from one read: (None, None) when unpublished."""
        target = f"{folder}/{MANIFEST_NAME}"
        if self.is_local:
            try:
                data = Path(target).read_bytes()
            except FileNotFoundError:
                return None, None
            return sha256_bytes(data), data
        return fsspec.asyn.sync(self.fs.loop, _s3_get_with_etag, self.fs, target)

    def _published_state(self, folder: str) -> tuple[str | None, frozenset[str]]:
        """The current manifest's generation and the files it lists (none if unreadable)."""
        generation, data = self._read_manifest_file(folder)
        if data is None:
            return generation, frozenset()
        try:
            return generation, frozenset(e.path for e in Manifest.from_json(data.decode()).files)
        except (ValueError, TypeError, KeyError, AttributeError):
            return generation, frozenset()  # an unreadable manifest is rebuilt; its files are swept by age

    def _publish_manifest(self, folder: str, manifest: Manifest, expected: str | None,
                          replaced: frozenset[str]) -> bool:
        """Write `manifest` if the partition's generation is still `expected` (compare-and-set), then
        remove what it supersedes (`replaced`: the files of the manifest of that generation). False,
        with nothing written, when another writer published first."""
        if self.is_local:
            return self._publish_local(folder, manifest, expected, replaced)
        return self._publish_s3(folder, manifest, expected, replaced)

    def _publish_local(self, folder: str, manifest: Manifest, expected: str | None, replaced: frozenset[str]) -> bool:
        # flock (not fcntl's per-process locks) also excludes other threads of this process.
        handle = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if self._generation(folder) != expected:
                return False
            # Write beside the target, then rename: readers see the old or the new manifest, whole.
            tmp = f"{folder}/.{MANIFEST_NAME}.{manifest.attempt}.tmp"
            with open(tmp, "wb") as out:
                out.write(manifest.to_json().encode())
            os.replace(tmp, f"{folder}/{MANIFEST_NAME}")
            listing = self._listing(folder)
            self._remove_superseded(manifest, listing, replaced, _modified(listing[MANIFEST_NAME]))
            return True
        finally:
            os.close(handle)

    def _publish_s3(self, folder: str, manifest: Manifest, expected: str | None, replaced: frozenset[str]) -> bool:
        target = f"{folder}/{MANIFEST_NAME}"
        bucket, key, _ = self.fs.split_path(target)
        condition = {"IfMatch": expected} if expected else {"IfNoneMatch": "*"}
        try:
            written = self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=manifest.to_json().encode(),
                                      **condition)
        except OSError as exc:
            if not _lost_race(exc):
                raise
            # A retried PUT whose first try went through answers 412 too: that one is ours.
            return self._current_attempt(manifest) == manifest.attempt
        finally:
            self.fs.invalidate_cache(folder)
        listing = self._listing(folder)
        current = listing.get(MANIFEST_NAME, {})
        # Sweep leftovers by age only while the manifest is still ours (its time is then the threshold).
        published_at = _modified(current) if current.get("ETag") == written["ETag"] else None
        self._remove_superseded(manifest, listing, replaced, published_at)
        return True

    def _current_attempt(self, manifest: Manifest) -> str | None:
        try:
            current = self.manifest(manifest.zone, manifest.dataset, manifest.ds)
        except DamagedPartition:
            return None
        return current.attempt if current else None

    def _remove_superseded(self, manifest: Manifest, listing: dict[str, dict[str, Any]], replaced: frozenset[str],
                           published_at: float | None) -> None:
        """Remove the files of the replaced manifest, and leftovers: unlisted files of an attempt that
        started before this one (or of no recognisable attempt) last written before the manifest was
        (`published_at`, by the store's clock; None skips them). A writer that started later keeps its
        staged files even if its clock is behind: they were written after the manifest."""
        keep = {e.path for e in manifest.files} | {MANIFEST_NAME}
        for name, info in listing.items():
            if name in keep or not (name in replaced or _is_leftover(name, info, manifest.attempt, published_at)):
                continue
            try:
                if info.get("type") == "directory":
                    self.fs.rm(info["name"], recursive=True)
                else:
                    self.fs.rm_file(info["name"])  # one request on S3 (rm would list and check first)
            except FileNotFoundError:
                pass  # a newer writer's clean-up got there first


def _first(protocol: str | tuple[str, ...]) -> str:
    return protocol if isinstance(protocol, str) else protocol[0]


async def _s3_get_with_etag(fs: Any, path: str) -> tuple[str | None, bytes | None]:
    """One GET: the object's ETag and body agree (a HEAD then a GET could see two versions)."""
    bucket, key, _ = fs.split_path(path)
    try:
        response = await fs._call_s3("get_object", Bucket=bucket, Key=key)
    except FileNotFoundError:
        return None, None
    try:
        return response["ETag"], await response["Body"].read()
    finally:
        response["Body"].close()


def partition_name(zone: str, dataset: str, ds: str) -> str:
    return f"{zone}/{dataset}/ds={ds}"


def _attempt_of(file_name: str) -> str | None:
    found = _ATTEMPT.search(file_name)
    return found.group(0) if found else None


def _is_leftover(name: str, info: dict[str, Any], attempt: str, published_at: float | None) -> bool:
    modified = _modified(info)
    if published_at is None or modified is None or modified >= published_at:
        return False
    started = _attempt_of(name)
    return started is None or started < attempt


def _modified(info: dict[str, Any]) -> float | None:
    """When the store says a listed file was last written (local mtime, S3 LastModified)."""
    if info.get("mtime") is not None:
        return float(info["mtime"])
    stamp = info.get("LastModified")
    return stamp.timestamp() if isinstance(stamp, datetime) else None


def _lost_race(exc: OSError) -> bool:
    if isinstance(exc, FileExistsError | FileNotFoundError):
        return True
    response = getattr(exc.__cause__, "response", None) or {}
    return str(response.get("Error", {}).get("Code")) in _LOST_RACE_CODES


def _size_problem(entry: FileEntry, size: int | None) -> str:
    return f"{entry.name} is {size} bytes, the manifest says {entry.bytes} (rewritten or truncated in place?)"


def _row_count_problems(manifest: Manifest) -> list[str]:
    counted = [e.rows for e in manifest.data_files]
    if counted and None not in counted and sum(counted) != manifest.row_count:
        return [f"the manifest's row count {manifest.row_count} is not the sum of its files' rows {sum(counted)} "
                "(manifest edited?)"]
    return []


def _content_problem(entry: FileEntry, data: bytes) -> str | None:
    """How a file's bytes differ from its manifest entry (size, SHA-256, Parquet row count), if they do."""
    if len(data) != entry.bytes:
        return _size_problem(entry, len(data))
    digest = sha256_bytes(data)
    if digest != entry.sha256:
        return (f"{entry.name} has SHA-256 {digest[:12]}..., the manifest says {entry.sha256[:12]}... "
                "(rewritten in place?)")
    if entry.rows is not None and entry.path.endswith(".parquet"):
        try:
            rows = pq.read_metadata(io.BytesIO(data)).num_rows
        except (pa.ArrowException, OSError) as exc:
            return f"{entry.name} is not readable Parquet ({exc})"
        if rows != entry.rows:
            return f"{entry.name} has {rows} rows, the manifest says {entry.rows}"
    return None


def _listed(problem: str | None) -> list[str]:
    return [problem] if problem else []


class PartitionWriter:
    """Collects the files of one attempt at a partition; see `Lake.publish`."""

    def __init__(self, lake: Lake, zone: str, dataset: str, ds: str, manifest_fields: dict[str, Any]):
        self.lake = lake
        self.zone, self.dataset, self.ds = zone, dataset, ds
        self.folder = lake.partition_path(zone, dataset, ds)
        self.attempt = new_attempt_id()
        self.fields = dict(manifest_fields)
        self.entries: list[FileEntry] = []
        self.carried: list[FileEntry] = []  # files of the published partition this attempt keeps (`carry`)
        self.schema: pa.Schema | None = None
        self._open: list[str] = []  # physical files being streamed: removed too if the attempt aborts
        if lake.is_local:  # S3 has no folders to make
            lake.fs.makedirs(self.folder, exist_ok=True)
        # The published state this attempt builds on: the manifest is replaced only if still this one.
        self.base, self.replaces = lake._published_state(self.folder)

    def write_table(self, table: pa.Table) -> FileEntry:
        """Write one Parquet part file; all parts of a partition must share one schema."""
        self._check_schema(table.schema)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        index = len(self.entries)
        name = f"part-{index:05d}.parquet"
        return self._put(name, f"part-{index:05d}-{self.attempt}.parquet", sink.getvalue(), table.num_rows)

    def write_tables(self, tables: Iterable[pa.Table], schema: pa.Schema) -> FileEntry:
        """Write one Parquet part file from tables that arrive one at a time (each of `schema`),
        straight to the store as they come: memory holds two tables (the next one is made in a
        background thread while this one is written), not the partition. Its size and SHA-256 are
        taken from the bytes on their way out, so the file is never read back."""
        self._check_schema(schema)
        index = len(self.entries)
        name, physical = f"part-{index:05d}.parquet", f"part-{index:05d}-{self.attempt}.parquet"
        self._check_new(name)
        self._open.append(physical)
        rows = 0
        with self.lake.fs.open(f"{self.folder}/{physical}", "wb") as handle:
            sink = _HashingSink(handle)
            with pq.ParquetWriter(sink, schema, compression="zstd") as parquet:
                for table in _MadeAhead(tables):
                    if table.num_rows:
                        parquet.write_table(table)
                        rows += table.num_rows
        entry = FileEntry(name=name, path=physical, bytes=sink.size, sha256=sink.hexdigest(), rows=rows)
        self.entries.append(entry)
        self._open.remove(physical)
        return entry

    def set_manifest_fields(self, **fields: Any) -> None:
        """Manifest fields known only once the files are written (e.g. checksums of inputs read on
        the way); `extra` is merged into the `extra` given at the start."""
        extra = {**self.fields.get("extra", {}), **fields.pop("extra", {})}
        self.fields.update(fields, extra=extra)

    def _check_schema(self, schema: pa.Schema) -> None:
        if self.schema is not None and not schema.equals(self.schema):
            raise LakeError(
                f"part files of {self.zone}/{self.dataset}/ds={self.ds} disagree on schema: "
                f"{self.schema} vs {schema}"
            )
        self.schema = schema

    def _check_new(self, name: str) -> None:
        if any(e.name == name for e in (*self.carried, *self.entries)):
            raise LakeError(f"file {name!r} written twice to {self.zone}/{self.dataset}/ds={self.ds}")

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
        self._check_new(name)
        self.lake.fs.pipe_file(f"{self.folder}/{physical}", data)
        entry = FileEntry(name=name, path=physical, bytes=len(data), sha256=sha256_bytes(data), rows=rows)
        self.entries.append(entry)
        return entry

    def carry(self, entry: FileEntry) -> None:
        """List a non-tabular file of the published partition in this attempt's manifest as it is
        (same physical file, never rewritten), so that links to it stay valid after this publish."""
        if entry.path.endswith(".parquet"):
            raise LakeError(f"part file {entry.name!r} of {self.partition} cannot be carried into a new attempt")
        self._check_new(entry.name)
        self.carried.append(entry)

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
            files=(*self.carried, *self.entries),
            row_count=self.row_count,
            schema_hash=schema_hash(self.schema) if self.schema is not None else None,
            run_id=self.fields.pop("run_id", None),
            inputs=tuple(self.fields.pop("inputs", ())),
            extra=self.fields.pop("extra", {}),
        )
        if self.fields:
            raise LakeError(f"unknown manifest fields: {sorted(self.fields)}")
        listing = self.lake._listing(self.folder)
        lost = [e.path for e in (*self.carried, *self.entries) if listing.get(e.path, {}).get("size") != e.bytes]
        if lost:
            self.abort()
            if self.lake._generation(self.folder) != self.base:  # the winner's clean-up took them
                raise self._conflict()
            raise PublishConflict(
                f"files of attempt {self.attempt} at {self.partition} vanished or changed before publish "
                f"({', '.join(lost)}): something else removed or rewrote them; nothing was published by "
                "this attempt; retry the task")
        if not self.lake._publish_manifest(self.folder, manifest, self.base, self.replaces):
            self.abort()
            raise self._conflict()
        self.manifest = manifest
        log.info("published %s rows to %s", manifest.row_count, self.lake.uri(self.folder))
        return manifest

    @property
    def partition(self) -> str:
        return partition_name(self.zone, self.dataset, self.ds)

    def _conflict(self) -> PublishConflict:
        return PublishConflict(
            f"another writer published {self.partition} ({self._winner()}) while this attempt "
            f"({self.attempt}) was writing; nothing was published by this attempt; retry the task "
            "(a retry keeps that partition if it was built from the same inputs)")

    def _winner(self) -> str:
        try:
            current = self.lake.manifest(self.zone, self.dataset, self.ds)
        except DamagedPartition:
            return "its manifest is now unreadable"
        if current is None:
            return "then withdrew it"
        return f"attempt {current.attempt}, run {current.run_id or 'unknown'}"

    def abort(self) -> None:
        for path in [e.path for e in self.entries] + self._open:
            try:
                self.lake.fs.rm_file(f"{self.folder}/{path}")
            except FileNotFoundError:
                pass


class _MadeAhead:
    """`items`, each made in a background thread while the one before is used by the caller
    (Arrow's CSV reader and Parquet writer release the GIL, so parsing and writing overlap). What
    the producer raises is raised to the caller, in order; if the caller stops early, so does it."""

    _DONE = object()

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items
        self.ready: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=1)
        self.stop = threading.Event()

    def __iter__(self) -> Iterator[Any]:
        producer = threading.Thread(target=self._produce, name="skylift-made-ahead", daemon=True)
        producer.start()
        try:
            while True:
                item, error = self.ready.get()
                if error is not None:
                    raise error
                if item is self._DONE:
                    return
                yield item
        finally:
            self.stop.set()
            producer.join()
            close = getattr(self.items, "close", None)
            if close is not None:
                close()  # a generator left early runs its clean-up (open files) now

    def _produce(self) -> None:
        try:
            for item in self.items:
                if not self._hand_over(item):
                    return
            self._hand_over(self._DONE)
        except BaseException as exc:  # handed to the caller, which raises it
            self._hand_over(self._DONE, exc)

    def _hand_over(self, item: Any, error: BaseException | None = None) -> bool:
        while not self.stop.is_set():
            try:
                self.ready.put((item, error), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


class _HashingSink:
    """A binary file being written, hashing and counting the bytes on their way to it."""

    def __init__(self, handle: Any) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.closed = True  # the handle is closed by its owner

    def tell(self) -> int:
        return self.size

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def schema_hash(schema: pa.Schema) -> str:
    """Hash of column names, types and nullability (metadata ignored)."""
    text = "\n".join(f"{f.name}:{f.type}:{f.nullable}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
