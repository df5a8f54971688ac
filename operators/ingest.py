"""Stage 1: ingest a day's source drop into the lake's `raw` zone, held to its schema contract."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from operators.base import SkyliftOperator, file_digest, partition_date
from operators.drops import content_gaps, inspect_drop, render_drop_uri, require_complete
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
        from include.contracts import Contract, read_drop

        ds = partition_date(context)
        contract_path = resolve_file(self.schema_file)
        contract = Contract.from_file(contract_path)
        drops = LakeHook(root=self.settings.drops_root, conn_id=self.settings.lake_conn_id)
        uri = render_drop_uri(self.source_uri, ds, self.settings.drops_root)
        fs, path = _filesystem(uri, drops.storage_options() if uri.startswith("s3") else {})
        contents = self._read_whole_drop(fs, path, uri, ds)
        date_check = {"date_column": self.completion.date_column} if self.completion.date_column else {}
        key = self.build_key([(u, hashlib.sha256(data).hexdigest()) for u, data in sorted(contents)],
                             contract=file_digest(contract_path), format=self.source_format,
                             on_row_error=self.on_row_error, **date_check)
        manifest = self.unchanged(context, "raw", self.dataset, ds, key) or self._publish(
            context, ds, uri, key, read_drop(contents, self.source_format, contract, on_row_error=self.on_row_error,
                                             ds=ds, **date_check))
        self.log.info("raw/%s/ds=%s: %d rows, schema %s", self.dataset, ds, manifest.row_count, manifest.schema_hash)
        rejected = manifest.extra.get("rejected_rows", 0)
        if rejected:
            self.log.warning("raw/%s/ds=%s: %d row(s) rejected by the contract, kept for quarantine: %s",
                             self.dataset, ds, rejected, manifest.extra.get("rejected_reasons"))
        return {"ds": ds, "rows": manifest.row_count, "rejected": rejected,
                "partition": self.lake.partition_uri("raw", self.dataset, ds)}

    def _read_whole_drop(self, fs: Any, path: str, uri: str, ds: str) -> list[tuple[str, bytes]]:
        """The drop's files as (uri, content), only once the drop is whole by the spec's completion
        rules: a run without the sensor (a re-run, a manual trigger) must not ingest half a drop."""
        drop = inspect_drop(fs, path, self.source_format, self.completion, now=time.time())
        require_complete(drop, uri, ds, self.source_format)
        self.log.info("reading %d file(s) from %s", len(drop.listing.data), uri)
        contents = [(_as_uri(fs, f.path), fs.cat_file(f.path)) for f in drop.listing.data]
        read = {f.name: data for f, (_, data) in zip(drop.listing.data, contents, strict=True)}
        require_complete(drop.also_missing(content_gaps(drop.manifest, read, self.completion.manifest)),
                         uri, ds, self.source_format)
        return contents

    def _publish(self, context: Any, ds: str, uri: str, key: str, drop: Any) -> Any:
        from include.quarantine import REJECTED_FILE, describe_rejected, encode_rejected

        extra = {"source_uri": uri, "writer": self.run_identity(context), "build_key": key}
        if drop.rejected:
            extra.update(rejected_rows=len(drop.rejected), rejected_reasons=describe_rejected(list(drop.rejected)))
        with self.publish(
            "raw", self.dataset, ds,
            run_id=context["ti"].run_id,
            inputs=[s.as_input() for s in drop.sources],
            extra=extra,
        ) as writer:
            writer.write_table(drop.table)
            if drop.rejected:  # listed by the manifest: the raw partition keeps every row of the drop
                writer.write_bytes(REJECTED_FILE, encode_rejected(drop.rejected))
        return writer.manifest


def _filesystem(uri: str, options: dict[str, Any]):
    import fsspec

    return fsspec.core.url_to_fs(uri, **options)


def _as_uri(fs, path: str) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return f"file://{path}" if protocol in ("file", "local") else f"{protocol}://{path}"
