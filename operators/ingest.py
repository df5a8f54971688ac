"""Stage 1: ingest a day's source drop into the lake's `raw` zone, held to its schema contract."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from operators.base import SkyliftOperator, file_digest, partition_date
from operators.drops import (
    DropState,
    FileDigest,
    digest_file,
    digest_gaps,
    inspect_drop,
    render_drop_uri,
    require_complete,
)
from operators.hooks.lake import LakeHook
from operators.spec.loader import resolve_file
from operators.spec.models import CompletionSpec


class IngestOperator(SkyliftOperator):
    """Read the drop for the run's date (CSV, JSON lines or Parquet; local or S3), enforce the
    declared columns, types, nullability and key, and publish it as the `raw` partition with a
    manifest of source files and checksums. The drop itself is never modified.

    With `on_row_error="quarantine"` (the spec's validate policy is `quarantine`), rows whose cells
    break the contract are not published as rows: they go, with their text and reasons, to the
    partition's `rejected.jsonl`, which validation merges into the date's quarantine partition.
    """

    template_fields = ("source_uri",)
    ui_color = "#dff3e4"

    def __init__(self, *, source_uri: str, source_format: str, schema_file: str, dataset: str,
                 completion: CompletionSpec | None = None, on_row_error: str = "fail", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source_uri = source_uri
        self.source_format = source_format
        self.schema_file = schema_file
        self.dataset = dataset
        self.completion = completion or CompletionSpec()
        self.on_row_error = on_row_error

    def execute(self, context: Any) -> dict[str, Any]:
        from include.contracts import Contract

        ds, fs, uri, drop, config = self._drop_of(context)
        contract = Contract.from_file(resolve_file(self.schema_file))
        manifest = (self._kept(context, ds, fs, uri, drop, config)
                    or self._ingest(context, ds, fs, uri, drop, contract, config))
        self.log.info("raw/%s/ds=%s: %d rows, schema %s", self.dataset, ds, manifest.row_count, manifest.schema_hash)
        rejected = manifest.extra.get("rejected_rows", 0)
        if rejected:
            self.log.warning("raw/%s/ds=%s: %d row(s) rejected by the contract, kept for quarantine: %s",
                             self.dataset, ds, rejected, manifest.extra.get("rejected_reasons"))
        return {"ds": ds, "rows": manifest.row_count, "rejected": rejected,
                "partition": self.lake.partition_uri("raw", self.dataset, ds)}

    def kept_output(self, context: Any) -> Any | None:
        ds, fs, uri, drop, config = self._drop_of(context)
        return self._kept(context, ds, fs, uri, drop, config)

    def _drop_of(self, context: Any) -> tuple[str, Any, str, DropState, dict[str, Any]]:
        """The run's date, the drop's filesystem, address and (whole) listing, and the settings in the build key."""
        ds = partition_date(context)
        drops = LakeHook(root=self.settings.drops_root, conn_id=self.settings.lake_conn_id)
        uri = render_drop_uri(self.source_uri, ds, self.settings.drops_root)
        fs, path = _filesystem(uri, drops.storage_options() if uri.startswith("s3") else {})
        drop = self._whole_drop(fs, path, uri, ds)
        date_check = {"date_column": self.completion.date_column} if self.completion.date_column else {}
        config = {"contract": file_digest(resolve_file(self.schema_file)), "format": self.source_format,
                  "on_row_error": self.on_row_error, **date_check}
        return ds, fs, uri, drop, config

    def _whole_drop(self, fs: Any, path: str, uri: str, ds: str) -> DropState:
        """The drop's listing, only once the drop is whole by the spec's completion rules: a run
        without the sensor (a re-run, a manual trigger) must not ingest half a drop."""
        drop = inspect_drop(fs, path, self.source_format, self.completion, now=time.time())
        require_complete(drop, uri, ds, self.source_format)
        return drop

    def _kept(self, context: Any, ds: str, fs: Any, uri: str, drop: DropState, config: dict[str, Any]) -> Any:
        """The raw partition, kept, if it was built from this very drop. Telling so takes a read of
        the drop to hash it, so only a partition whose inputs are these files at these sizes (a
        re-run, a retry) is asked; a new drop is hashed on its one read, while it is ingested."""
        from include.errors import DamagedPartition

        if (context.get("params") or {}).get("rebuild"):
            return None
        try:
            current = self.lake.manifest("raw", self.dataset, ds)
        except DamagedPartition:
            return None  # rebuilt below: a plain retry heals it
        listed = sorted((_as_uri(fs, f.path), f.size) for f in drop.listing.data)
        if current is None or sorted((i.get("source"), i.get("bytes")) for i in current.inputs) != listed:
            return None
        digests = {f.name: digest_file(fs, f.path) for f in drop.listing.data}
        self._require_as_listed(drop, digests, uri, ds)
        key = self.build_key(sorted((_as_uri(fs, f.path), digests[f.name].sha256) for f in drop.listing.data),
                             **config)
        return self.unchanged(context, "raw", self.dataset, ds, key)

    def _ingest(self, context: Any, ds: str, fs: Any, uri: str, drop: DropState, contract: Any,
                config: dict[str, Any]) -> Any:
        """Read the drop batch by batch into the raw partition's part file, then publish it with the
        files' checksums (taken on the same read) and the rejected rows."""
        from include.contracts import DropStream
        from include.errors import ContractError
        from include.quarantine import REJECTED_FILE, describe_rejected, encode_rejected

        names = {_as_uri(fs, f.path): f.name for f in drop.listing.data}
        stream = DropStream([(u, partial(fs.open, f.path, "rb")) for u, f in zip(names, drop.listing.data,
                                                                                  strict=True)],
                            self.source_format, contract, on_row_error=self.on_row_error, ds=ds,
                            date_column=self.completion.date_column)
        self.log.info("reading %d file(s) from %s", len(names), uri)
        extra = {"source_uri": uri, "writer": self.run_identity(context)}
        with self.publish("raw", self.dataset, ds, run_id=context["ti"].run_id, extra=extra) as writer:
            try:
                writer.write_tables(stream.tables(), contract.arrow_schema)
            except ContractError:
                # A file rewritten after the uploader's manifest is an unfinished upload, not bad data.
                if drop.manifest is not None:
                    self._require_as_listed(drop, {f.name: digest_file(fs, f.path) for f in drop.listing.data},
                                            uri, ds)
                raise
            self._require_as_listed(drop, {names[s.uri]: FileDigest(s.bytes, s.sha256) for s in stream.sources},
                                    uri, ds)
            found = {"build_key": self.build_key([(s.uri, s.sha256) for s in stream.sources], **config)}
            if stream.rejected:
                found.update(rejected_rows=len(stream.rejected), rejected_reasons=describe_rejected(stream.rejected))
                # listed by the manifest: the raw partition keeps every row of the drop
                writer.write_bytes(REJECTED_FILE, encode_rejected(stream.rejected))
            writer.set_manifest_fields(inputs=[s.as_input() for s in stream.sources], extra=found)
        return writer.manifest

    def _require_as_listed(self, drop: DropState, read: dict[str, FileDigest], uri: str, ds: str) -> None:
        """Refuse files whose bytes as read are not those the uploader's manifest lists."""
        require_complete(drop.also_missing(digest_gaps(drop.manifest, read, self.completion.manifest)),
                         uri, ds, self.source_format)


def _filesystem(uri: str, options: dict[str, Any]):
    import fsspec

    return fsspec.core.url_to_fs(uri, **options)


def _as_uri(fs, path: str) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return f"file://{path}" if protocol in ("file", "local") else f"{protocol}://{path}"
