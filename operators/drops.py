"""Where a day's source drop lives and which files belong to it (shared by sensor and ingest)."""

from __future__ import annotations

from datetime import date

from include.errors import SpecError


def render_drop_uri(template: str, ds: str, drops_root: str) -> str:
    """Fill in the date; a relative location is taken under the drops root."""
    day = date.fromisoformat(ds)
    uri = template.replace("{ds}", day.isoformat()).replace("{ds_nodash}", day.strftime("%Y%m%d"))
    if "{" in uri or "}" in uri:
        raise SpecError(f"source uri {template!r}: only {{ds}} and {{ds_nodash}} can be filled in")
    if "://" in uri or uri.startswith("/") or ".." in uri.split("/"):
        raise SpecError(f"source uri {template!r} must be a path relative to the drops root {drops_root}")
    return f"{drops_root.rstrip('/')}/{uri.removeprefix('./')}"


def list_drop(fs, path: str, fmt: str) -> list[str]:
    """Files of the drop at `path` (a folder, or one file) that have the format's extension.

    Hidden and underscore files (`.x.tmp`, `_SUCCESS`) are an uploader's business and are ignored.
    """
    from include.contracts import FORMATS

    if not fs.exists(path):
        return []
    if fs.isfile(path):
        return [path]
    names = fs.ls(path, detail=False)
    suffixes = FORMATS[fmt]
    return sorted(
        p for p in names
        if not p.rstrip("/").rsplit("/", 1)[-1].startswith((".", "_")) and p.lower().endswith(suffixes)
    )
