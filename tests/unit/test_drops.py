"""Drop completeness (operators/drops.py) and its enforcement at ingest: a drop is read only once
it is whole by the spec's rules (marker or manifest, file count, settle time) and of its own date.

The local filesystem through fsspec stands in for S3 here (the same listing code runs on both;
tests/integration/test_drops_s3.py runs it against an S3 server).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import fsspec
import pytest

from include.datagen.churn import MARKER, generate
from include.errors import ContractError, IncompleteDrop
from include.lake import Lake
from operators.drops import DropWatch, content_gaps, inspect_drop, list_drop
from operators.ingest import IngestOperator
from operators.spec.models import CompletionSpec

DS = "2026-11-24"
SCHEMA = "include/schemas/customer_activity.yaml"
LOCAL = fsspec.filesystem("file")
MARKED = CompletionSpec(marker="_SUCCESS")


def look(folder: Path, completion: CompletionSpec, fmt: str = "csv", now: float | None = None):
    return inspect_drop(LOCAL, str(folder), fmt, completion, now=now)


def put(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def manifest_of(files: dict[str, bytes], checksums: bool = True) -> bytes:
    return json.dumps({"files": [
        {"name": n, "size": len(d), **({"sha256": hashlib.sha256(d).hexdigest()} if checksums else {})}
        for n, d in files.items()]}).encode()


def prefix_at_line_end(data: bytes, share: float) -> bytes:
    """What a reader sees of a file still being uploaded: the first `share` of it, cut at a line end."""
    return data[: data.rindex(b"\n", 0, int(len(data) * share)) + 1]


# ---- which files are the drop's, and what is missing --------------------------------------------

def test_listing_keeps_uploads_and_bookkeeping_out_of_the_data(tmp_path):
    folder = put(tmp_path / "d", {"a.jsonl": b"{}\n", ".b.jsonl.tmp": b"{", "_SUCCESS": b"", "manifest.json": b"{}"})
    listing = list_drop(LOCAL, str(folder), "jsonl", CompletionSpec(manifest="manifest.json"))
    assert [f.name for f in listing.data] == ["a.jsonl"]  # `manifest.json` has a JSON-lines extension
    assert [f.name for f in listing.files] == [".b.jsonl.tmp", "_SUCCESS", "a.jsonl", "manifest.json"]
    assert listing.state == ((".b.jsonl.tmp", 1), ("_SUCCESS", 0), ("a.jsonl", 3), ("manifest.json", 2))


def test_no_folder_is_an_empty_drop(tmp_path):
    drop = look(tmp_path / "missing", MARKED)
    assert drop.empty and drop.missing == ("no csv files", "no _SUCCESS marker yet (the uploader writes it after "
                                                           "the last file)")


def test_marker_makes_a_drop_whole(tmp_path):
    folder = put(tmp_path / "d", {"a.csv": b"x\n1\n"})
    assert look(folder, MARKED).missing == ("no _SUCCESS marker yet (the uploader writes it after the last file)",)
    assert look(folder, CompletionSpec()).complete  # no rules: as before, any data file will do
    put(folder, {"_SUCCESS": b""})
    assert look(folder, MARKED).complete


def test_expected_file_count(tmp_path):
    folder = put(tmp_path / "d", {"part-1.csv": b"x\n1\n"})
    rule = CompletionSpec(expected_files=2)
    assert look(folder, rule).missing == ("2 csv file(s) expected, 1 present (part-1.csv)",)
    put(folder, {"part-2.csv": b"x\n2\n"})
    assert look(folder, rule).complete


def test_manifest_names_exactly_the_files_and_sizes(tmp_path):
    whole = {"a.csv": b"x\n1\n2\n", "b.csv": b"x\n3\n"}
    rule = CompletionSpec(manifest="_manifest.json")
    folder = put(tmp_path / "d", {"a.csv": whole["a.csv"][:4]})
    assert look(folder, rule).missing == ("no _manifest.json manifest yet (the uploader writes it after the last "
                                          "file)",)
    put(folder, {"_manifest.json": manifest_of(whole)[:30]})  # the manifest itself half written
    assert look(folder, rule).missing[0].startswith("the manifest _manifest.json cannot be read: ")
    put(folder, {"_manifest.json": manifest_of(whole), "stray.csv": b"x\n9\n"})
    assert look(folder, rule).missing == (
        "a.csv has 4 bytes where _manifest.json says 6",
        "b.csv is listed in _manifest.json but not in the drop",
        "stray.csv is in the drop but not listed in _manifest.json",
    )
    (folder / "stray.csv").unlink()
    put(folder, whole)
    drop = look(folder, rule)
    assert drop.complete and [e.name for e in drop.manifest.files] == ["a.csv", "b.csv"]


def test_manifest_checksums_are_checked_on_the_bytes_read(tmp_path):
    whole = {"a.csv": b"x\n1\n"}
    manifest = look(put(tmp_path / "d", {**whole, "_m.json": manifest_of(whole)}),
                    CompletionSpec(manifest="_m.json")).manifest
    assert content_gaps(manifest, whole, "_m.json") == []
    assert content_gaps(manifest, {"a.csv": b"x\n7\n"}, "_m.json") == [
        "a.csv: its SHA-256 is not the one _m.json lists (changed after the manifest was written?)"]
    assert content_gaps(manifest, {"a.csv": b"x\n"}, "_m.json") == ["a.csv was read with 2 bytes where _m.json says 4"]


def test_settle_time_at_ingest_goes_by_modification_time(tmp_path):
    folder = put(tmp_path / "d", {"a.csv": b"x\n1\n"})
    modified = (folder / "a.csv").stat().st_mtime
    rule = CompletionSpec(settle_seconds=60)
    assert look(folder, rule, now=modified + 5).missing == ("a.csv changed 5s ago, less than settle_seconds=60",)
    assert look(folder, rule, now=modified + 61).complete
    assert look(folder, rule).complete  # the sensor judges settling by watching instead (DropWatch)


def test_watch_waits_for_names_and_sizes_to_stay_put(tmp_path):
    folder = put(tmp_path / "d", {"a.csv": b"x\n1\n"})
    watch = DropWatch(settle_seconds=30)
    assert watch.observe(look(folder, CompletionSpec()), now=0) == 30
    put(folder, {"a.csv": b"x\n1\n2\n"})  # still growing
    assert watch.observe(look(folder, CompletionSpec()), now=20) == 30
    assert watch.observe(look(folder, CompletionSpec()), now=45) == 5
    assert watch.observe(look(folder, CompletionSpec()), now=50) == 0
    put(folder, {".b.csv.tmp": b"x"})  # an upload under a hidden name counts as a change too
    assert watch.observe(look(folder, CompletionSpec()), now=60) == 30
    assert watch.observe(look(folder, MARKED), now=200) is None  # not whole: no wait will do


# ---- ingest holds a drop to the same rules (a run without the sensor) ----------------------------

@pytest.fixture
def drops(skylift_env):
    root = skylift_env / "drops" / "activity"
    generate(root, date.fromisoformat(DS), days=2, n_customers=300)
    return root


def ingest(context_for, completion: CompletionSpec, ds: str = DS):
    op = IngestOperator(task_id="ingest", pipeline="t", source_uri="activity/{ds}/", source_format="csv",
                        schema_file=SCHEMA, dataset="activity", completion=completion)
    return op.execute(context_for(ds))


def no_raw_partition(skylift_env) -> bool:
    return Lake(f"file://{skylift_env}/lake").manifest("raw", "activity", DS) is None


def test_yesterdays_file_in_todays_folder_is_refused(drops, skylift_env, context_for):
    yesterday = "2026-11-23"
    (drops / DS / "activity.csv").write_bytes((drops / yesterday / "activity.csv").read_bytes())
    with pytest.raises(ContractError) as caught:
        ingest(context_for, CompletionSpec(marker=MARKER, date_column="event_date"))
    assert str(caught.value) == (f"file://{drops}/{DS}/activity.csv: column 'event_date' must be {DS} (the partition "
                                 f"date) but rows 2-301 hold {yesterday}: is this yesterday's drop?")
    assert no_raw_partition(skylift_env)


def test_a_few_rows_of_another_day_are_named(drops, context_for):
    path = drops / DS / "activity.csv"
    lines = path.read_bytes().split(b"\n")
    for line in (5, 6, 9):
        lines[line - 1] = lines[line - 1].replace(DS.encode(), b"2026-11-02")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(ContractError, match=r"activity.csv: column 'event_date' must be 2026-11-24 \(the partition "
                                            r"date\) but rows 5-6, 9 hold 2026-11-02: is this another day's drop"):
        ingest(context_for, CompletionSpec(date_column="event_date"))


def test_an_upload_in_progress_is_refused_until_its_marker_lands(drops, skylift_env, context_for):
    folder = drops / DS
    whole = (folder / "activity.csv").read_bytes()
    (folder / MARKER).unlink()
    (folder / "activity.csv").write_bytes(prefix_at_line_end(whole, 0.4))  # parses cleanly: 40 % of the rows
    with pytest.raises(IncompleteDrop) as caught:
        ingest(context_for, MARKED)
    assert str(caught.value) == (f"the drop at file://{folder}/ for ds={DS} is not complete: no _SUCCESS marker yet "
                                 "(the uploader writes it after the last file). Nothing was ingested; run the task "
                                 "again once the upload has finished")
    assert no_raw_partition(skylift_env)
    (folder / "activity.csv").write_bytes(whole)
    (folder / MARKER).write_bytes(b"")
    assert ingest(context_for, MARKED)["rows"] == 300


def test_a_two_file_drop_with_one_file_landed_is_refused(drops, skylift_env, context_for):
    folder = drops / DS
    lines = (folder / "activity.csv").read_bytes().split(b"\n")
    halves = {"part-1.csv": b"\n".join(lines[:151]) + b"\n", "part-2.csv": b"\n".join([lines[0], *lines[151:]])}
    (folder / "activity.csv").unlink()
    (folder / MARKER).unlink()
    put(folder, {"part-1.csv": halves["part-1.csv"], "_manifest.json": manifest_of(halves)})
    for rule, missing in [
        (CompletionSpec(expected_files=2), "2 csv file(s) expected, 1 present (part-1.csv)"),
        (CompletionSpec(manifest="_manifest.json"), "part-2.csv is listed in _manifest.json but not in the drop"),
    ]:
        with pytest.raises(IncompleteDrop) as caught:
            ingest(context_for, rule)
        assert str(caught.value).startswith(f"the drop at file://{folder}/ for ds={DS} is not complete: {missing}. "
                                            "Nothing was ingested")
    assert no_raw_partition(skylift_env)
    put(folder, {"part-2.csv": halves["part-2.csv"]})
    assert ingest(context_for, CompletionSpec(manifest="_manifest.json", date_column="event_date"))["rows"] == 300


def test_a_file_changed_after_its_manifest_is_refused(drops, skylift_env, context_for):
    folder = drops / DS
    data = (folder / "activity.csv").read_bytes()
    put(folder, {"_manifest.json": manifest_of({"activity.csv": data})})
    (folder / "activity.csv").write_bytes(data.replace(b"premium", b"PREMIUM"))  # same size, other bytes
    with pytest.raises(IncompleteDrop, match=r"activity.csv: its SHA-256 is not the one _manifest.json lists"):
        ingest(context_for, CompletionSpec(manifest="_manifest.json"))
    assert no_raw_partition(skylift_env)


def test_completion_rules_in_the_spec_are_checked():
    assert CompletionSpec().model_dump() == {"marker": None, "manifest": None, "expected_files": None,
                                             "settle_seconds": 0, "date_column": None}
    with pytest.raises(ValueError, match="set either marker or manifest, not both"):
        CompletionSpec(marker="_SUCCESS", manifest="_manifest.json")
    for bad in ("../_SUCCESS", "a/b", ".."):
        with pytest.raises(ValueError):
            CompletionSpec(marker=bad)


def test_a_misspelt_completion_key_names_its_line(tmp_path):
    from include.errors import SpecError
    from operators.spec.loader import load_spec

    shipped = (Path(__file__).resolve().parents[2] / "dags" / "pipelines" / "churn.yaml").read_text()
    assert "completion: {marker: _SUCCESS" in shipped
    spec = tmp_path / "pipe.yaml"
    spec.write_text(shipped.replace("completion: {marker: _SUCCESS", "completion: {markr: _SUCCESS"))
    line = shipped[: shipped.index("completion:")].count("\n") + 1
    with pytest.raises(SpecError, match=rf"pipe.yaml:{line}: .*completion.markr: unknown key"):
        load_spec(spec)
