"""Where a day's source drop lives, which files belong to it and whether it is whole yet.

Shared by the drop sensor, its trigger and ingest, so all three judge a drop by the same rules
(`CompletionSpec`). Everything but `render_drop_uri` takes an fsspec filesystem, local or S3.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from include.errors import IncompleteDrop, SpecError
from operators.spec.models import CompletionSpec


def render_drop_uri(template: str, ds: str, drops_root: str) -> str:
    """Fill in the date; a relative location is taken under the drops root."""
    day = date.fromisoformat(ds)
    uri = template.replace("{ds}", day.isoformat()).replace("{ds_nodash}", day.strftime("%Y%m%d"))
    if "{" in uri or "}" in uri:
        raise SpecError(f"source uri {template!r}: only {{ds}} and {{ds_nodash}} can be filled in")
    if "://" in uri or uri.startswith("/") or ".." in uri.split("/"):
        raise SpecError(f"source uri {template!r} must be a path relative to the drops root {drops_root}")
    return f"{drops_root.rstrip('/')}/{uri.removeprefix('./')}"


@dataclass(frozen=True)
class DropFile:
    name: str  # the file's name inside the drop folder
    path: str  # the path the filesystem knows it by
    size: int
    modified: float | None  # seconds since the epoch, where the store reports it


@dataclass(frozen=True)
class DropListing:
    """One look at a drop: every file in its folder, and those that are the drop's data."""

    files: tuple[DropFile, ...]
    data: tuple[DropFile, ...]

    def file(self, name: str) -> DropFile | None:
        return next((f for f in self.files if f.name == name), None)

    @property
    def state(self) -> tuple[tuple[str, int], ...]:
        """What must stay put while a drop settles: every file's name and size (hidden uploads too)."""
        return tuple((f.name, f.size) for f in self.files)


class ManifestEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[^/\\]+$")
    size: int = Field(ge=0)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")


class DropManifest(BaseModel):
    """The uploader's list of a drop's files, written after the last of them."""

    model_config = ConfigDict(frozen=True)

    files: list[ManifestEntry] = Field(min_length=1)


@dataclass(frozen=True)
class DropState:
    """A drop as found, and why it is not whole yet (`missing` is empty once it is)."""

    listing: DropListing
    missing: tuple[str, ...]
    manifest: DropManifest | None = None

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def empty(self) -> bool:
        return not self.listing.files

    def also_missing(self, more: list[str]) -> DropState:
        return replace(self, missing=self.missing + tuple(more))


def list_drop(fs: Any, path: str, fmt: str, completion: CompletionSpec) -> DropListing:
    """The files at `path` (a folder, or one file) and which of them are the drop's data.

    Data files have the format's extension; hidden and underscore files (`.x.tmp`, `_SUCCESS`) and
    the spec's marker or manifest are the uploader's business, never data.
    """
    from include.contracts import FORMATS

    fs.invalidate_cache(path)  # s3fs caches listings: each look must see the bucket as it is now
    if not fs.exists(path):
        return DropListing(files=(), data=())
    single = fs.isfile(path)
    folder = path.rstrip("/").rsplit("/", 1)[0] if single else path
    entries = [e for e in fs.ls(folder, detail=True) if e.get("type") == "file"]
    files = tuple(sorted((_drop_file(e) for e in entries), key=lambda f: f.name))
    bookkeeping = {completion.marker, completion.manifest}
    if single:
        data = tuple(f for f in files if f.path.rstrip("/") == path.rstrip("/"))
    else:
        data = tuple(f for f in files if not f.name.startswith((".", "_")) and f.name not in bookkeeping
                     and f.name.lower().endswith(FORMATS[fmt]))
    return DropListing(files=files, data=data)


def inspect_drop(fs: Any, path: str, fmt: str, completion: CompletionSpec, now: float | None = None) -> DropState:
    """Look at the drop and judge it. With `now`, files changed less than `settle_seconds` before it
    count as still being written (ingest's check; the sensor watches sizes over time instead).
    """
    listing = list_drop(fs, path, fmt, completion)
    manifest, manifest_problem = None, None
    if completion.manifest and listing.file(completion.manifest):
        manifest, manifest_problem = read_manifest(fs, listing.file(completion.manifest), completion.manifest)
    missing = completeness_gaps(listing, fmt, completion, manifest, manifest_problem)
    if now is not None and completion.settle_seconds:
        missing += settle_gaps(listing, completion.settle_seconds, now)
    return DropState(listing=listing, missing=tuple(missing), manifest=manifest)


def read_manifest(fs: Any, entry: DropFile, name: str) -> tuple[DropManifest | None, str | None]:
    """The manifest, or why it cannot be read (a half-written manifest is not an error yet)."""
    try:
        return DropManifest.model_validate(json.loads(fs.cat_file(entry.path))), None
    except (ValueError, UnicodeDecodeError) as exc:
        detail = _validation_detail(exc) if isinstance(exc, ValidationError) else str(exc)
        return None, (f"the manifest {name} cannot be read: {detail} (expected "
                      '{"files": [{"name": ..., "size": ..., "sha256": ...}]})')


def completeness_gaps(listing: DropListing, fmt: str, completion: CompletionSpec,
                      manifest: DropManifest | None = None, manifest_problem: str | None = None) -> list[str]:
    """Why the drop is not whole by the spec's rules; empty when it is. Pure: no I/O."""
    gaps = [] if listing.data else [f"no {fmt} files"]
    if completion.marker and not listing.file(completion.marker):
        gaps.append(f"no {completion.marker} marker yet (the uploader writes it after the last file)")
    if completion.manifest:
        if manifest_problem:
            gaps.append(manifest_problem)
        elif manifest is None:
            gaps.append(f"no {completion.manifest} manifest yet (the uploader writes it after the last file)")
        else:
            gaps += manifest_gaps(listing, fmt, manifest, completion.manifest)
    expected = completion.expected_files
    if expected is not None and len(listing.data) != expected:
        present = ", ".join(f.name for f in listing.data) or "none"
        gaps.append(f"{expected} {fmt} file(s) expected, {len(listing.data)} present ({present})")
    return gaps


def manifest_gaps(listing: DropListing, fmt: str, manifest: DropManifest, name: str) -> list[str]:
    """Exactly the listed files, with the listed sizes: anything else is named."""
    gaps = []
    data = {f.name for f in listing.data}
    for entry in manifest.files:
        found = listing.file(entry.name)
        if found is None:
            gaps.append(f"{entry.name} is listed in {name} but not in the drop")
        elif entry.name not in data:
            gaps.append(f"{entry.name} is listed in {name} but is not a {fmt} data file")
        elif found.size != entry.size:
            gaps.append(f"{entry.name} has {found.size} bytes where {name} says {entry.size}")
    listed = {entry.name for entry in manifest.files}
    gaps += [f"{f.name} is in the drop but not listed in {name}" for f in listing.data if f.name not in listed]
    return gaps


def content_gaps(manifest: DropManifest | None, read: dict[str, bytes], name: str | None) -> list[str]:
    """Files whose content as read (name -> bytes) differs from the manifest's size or SHA-256:
    changed after the manifest was written, or between listing and reading."""
    return digest_gaps(manifest, {n: FileDigest(len(d), hashlib.sha256(d).hexdigest()) for n, d in read.items()},
                       name)


@dataclass(frozen=True)
class FileDigest:
    """What a file held as read: its size and SHA-256 (hex)."""

    size: int
    sha256: str


def digest_gaps(manifest: DropManifest | None, read: dict[str, FileDigest], name: str | None) -> list[str]:
    """`content_gaps` from the size and SHA-256 taken while the files were read (name -> digest)."""
    if manifest is None:
        return []
    gaps = []
    for entry in manifest.files:
        found = read.get(entry.name)
        if found is None:
            continue
        if found.size != entry.size:
            gaps.append(f"{entry.name} was read with {found.size} bytes where {name} says {entry.size}")
        elif entry.sha256 and found.sha256 != entry.sha256.lower():
            gaps.append(f"{entry.name}: its SHA-256 is not the one {name} lists (changed after the manifest "
                        "was written?)")
    return gaps


def digest_file(fs: Any, path: str, block: int = 8 * 2**20) -> FileDigest:
    """Size and SHA-256 of a file, read in blocks (a drop's file may not fit in memory)."""
    digest, size = hashlib.sha256(), 0
    with fs.open(path, "rb") as handle:
        while data := handle.read(block):
            digest.update(data)
            size += len(data)
    return FileDigest(size, digest.hexdigest())


def settle_gaps(listing: DropListing, settle_seconds: float, now: float) -> list[str]:
    """Files modified less than `settle_seconds` before `now`: maybe still being written."""
    return [f"{f.name} changed {max(now - f.modified, 0):.0f}s ago, less than settle_seconds={settle_seconds:g}"
            for f in listing.files if f.modified is not None and now - f.modified < settle_seconds]


@dataclass
class DropWatch:
    """Decides, look after look, when a whole drop has also settled: its files' names and sizes
    unchanged for `settle_seconds`. Pure: the caller supplies each look and the time.
    """

    settle_seconds: float
    _state: tuple[tuple[str, int], ...] | None = field(default=None, init=False)
    _since: float = field(default=0.0, init=False)

    def observe(self, drop: DropState, now: float) -> float | None:
        """Seconds until the drop may be read if nothing changes (0: now); None while it is not whole."""
        if drop.listing.state != self._state:
            self._state, self._since = drop.listing.state, now
        if not drop.complete:
            return None
        return max(0.0, self.settle_seconds - (now - self._since))

    def unsettled(self, now: float) -> str:
        return (f"its files changed {max(now - self._since, 0):.0f}s ago, less than "
                f"settle_seconds={self.settle_seconds:g}")


def _drop_file(entry: dict[str, Any]) -> DropFile:
    path = entry["name"]
    return DropFile(name=path.rstrip("/").rsplit("/", 1)[-1], path=path, size=int(entry.get("size") or 0),
                    modified=_modified(entry))


def _modified(entry: dict[str, Any]) -> float | None:
    """A listing entry's modification time (local: `mtime`; S3: `LastModified`)."""
    for key in ("mtime", "LastModified", "last_modified"):
        value = entry.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return None


def _validation_detail(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "the document"
    return f"{where}: {first['msg']}"


def require_complete(drop: DropState, uri: str, ds: str, fmt: str) -> None:
    """Refuse a drop that is not whole, naming the folder and what is missing."""
    if not drop.listing.data:
        raise IncompleteDrop(f"no {fmt} files in the drop at {uri} for ds={ds}")
    if drop.missing:
        raise IncompleteDrop(f"the drop at {uri} for ds={ds} is not complete: {'; '.join(drop.missing)}. "
                             "Nothing was ingested; run the task again once the upload has finished")
