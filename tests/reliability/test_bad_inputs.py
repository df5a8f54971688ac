"""Bad data never reaches a model: a corpus of broken drops run through `churn_nightly`.

Good nights up to D0 make a champion (outcomes land three days late, so the first model trains on
the sixth night). Then every case writes a broken activity drop for a date of its own
and runs the nightly DAG through Airflow (`dag.test()`). For each case:

- the run fails, in the expected task, with the exact message (file, column, first rows);
- no task after the failed one ran;
- the lake holds no partition for that date in any zone after the failure (and no stray part
  files), and nothing else in the lake changed;
- the drop is byte-identical to what the case wrote;
- the champion alias still points at the same model version.

Formats the shipped pipelines do not read (Parquet, JSON lines) are attacked at the operator level.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from include.datagen.churn import MARKER, generate, generate_labels
from include.errors import ContractError, IncompleteDrop, ValidationFailed
from include.lake import Lake
from tests.reliability.conftest import (
    DATASETS,
    NIGHTLY,
    assert_clean_partition,
    assert_no_partition,
    champion_version,
    run_dag_once,
    sha256,
    skylift_settings,
    tree_digest,
)

pytestmark = pytest.mark.reliability

FIRST = date(2026, 11, 1)  # the spec's start date: the first good night
D0 = FIRST + timedelta(days=5)  # the sixth good night: the first with enough outcomes to train and deploy
CUSTOMERS = 1200
HEADER = ["customer_id", "event_date", "plan", "tenure_days", "monthly_charges", "sessions", "minutes_watched",
          "support_tickets", "payment_failures"]
# `churn_nightly`'s task for each stage of the activity source (the label source has tasks of its own)
TASKS = {"wait_for_drop": "wait_for_drop_activity", "ingest": "ingest_activity", "validate": "validate_activity"}
SENSOR_TIMEOUT = 1  # seconds the drop sensor waits for a drop that never lands


# ---- breaking a good CSV drop ---------------------------------------------------------------
# The generated CSV has no quoted fields, so fields split on commas. Rows are data rows from 0;
# messages number them by line in the file: data row r is on line r + 2 (the header is line 1).

def _rows(data: bytes) -> tuple[list[str], list[list[str]]]:
    lines = data.decode().rstrip("\n").split("\n")
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


def _join(header: list[str], rows: list[list[str]]) -> bytes:
    return ("\n".join(",".join(r) for r in [header, *rows]) + "\n").encode()


def set_values(data: bytes, column: str, values: dict[int, str]) -> bytes:
    header, rows = _rows(data)
    for row, value in values.items():
        rows[row][header.index(column)] = value
    return _join(header, rows)


def every_nth(data: bytes, column: str, value: str, step: int) -> bytes:
    header, rows = _rows(data)
    return set_values(data, column, {r: value for r in range(0, len(rows), step)})


def drop_column(data: bytes, column: str) -> bytes:
    header, rows = _rows(data)
    keep = [i for i, name in enumerate(header) if name != column]
    return _join([header[i] for i in keep], [[r[i] for i in keep] for r in rows])


def rename_column(data: bytes, old: str, new: str) -> bytes:
    header, rows = _rows(data)
    return _join([new if name == old else name for name in header], rows)


def add_column(data: bytes, name: str, value: str) -> bytes:
    header, rows = _rows(data)
    return _join([*header, name], [[*r, value] for r in rows])


def keep_rows(data: bytes, start: int, stop: int, extra: tuple[int, ...] = ()) -> bytes:
    header, rows = _rows(data)
    return _join(header, rows[start:stop] + [rows[i] for i in extra])


def quote_column(data: bytes, column: str) -> bytes:
    header, rows = _rows(data)
    i = header.index(column)
    return _join(header, [[*r[:i], f'"{r[i]}"', *r[i + 1:]] for r in rows])


def line_of(data: bytes, line: int) -> str:
    return data.split(b"\n")[line - 1].decode()


def truncate_in_quoted_field(data: bytes) -> bytes:
    """Cut the file two characters into the quoted `plan` of data row 600 (line 602)."""
    quoted = quote_column(data, "plan")
    start = sum(len(line) + 1 for line in quoted.split(b"\n")[:601])
    return quoted[: quoted.index(b'"', start) + 3]


LATIN1_E = "\xe9".encode("latin-1")


def latin1_plan(data: bytes) -> bytes:
    header, rows = _rows(data)
    rows[5][header.index("plan")] = "pr\xe9mium"
    return ("\n".join(",".join(r) for r in [header, *rows]) + "\n").encode("latin-1")


def redate(data: bytes, day: date) -> bytes:
    """The same rows, every `event_date` set to `day`."""
    header, rows = _rows(data)
    return set_values(data, "event_date", dict.fromkeys(range(len(rows)), day.isoformat()))


def yesterdays_file(data: bytes) -> bytes:
    """The drop of the day before, uploaded again into this day's folder."""
    header, rows = _rows(data)
    return redate(data, date.fromisoformat(rows[0][header.index("event_date")]) - timedelta(days=1))


def prefix_at_line_end(data: bytes, share: float) -> bytes:
    """What a reader sees of a file still being uploaded: its first `share`, cut at a line end (so it parses)."""
    return data[: data.rindex(b"\n", 0, int(len(data) * share)) + 1]


# ---- the corpus ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Drop:
    """A case's drop as written: where, which files, for which date."""

    ds: str
    folder: Path
    files: dict[str, bytes]

    def uri(self, name: str = "activity.csv") -> str:
        return f"file://{self.folder}/{name}"

    @property
    def folder_uri(self) -> str:
        return f"file://{self.folder}/"


@dataclass(frozen=True)
class Case:
    id: str
    files: Callable[[bytes], dict[str, bytes]]  # the good CSV -> the files of the broken drop
    task: str  # the task that must fail
    message: Callable[[Drop], str]  # the exact message (validate: up to ". Report: <uri>")
    marker: bool = True  # the uploader wrote the completion marker after the files

    @property
    def error(self) -> type[BaseException]:
        return {"ingest": ContractError, "validate": ValidationFailed}.get(self.task, Exception)


def csv_case(case_id: str, breaker: Callable[[bytes], bytes], task: str, message: Callable[[Drop], str]) -> Case:
    return Case(case_id, lambda good: {"activity.csv": breaker(good)}, task, message)


def validation(detail: str) -> Callable[[Drop], str]:
    return lambda d: f"validation of raw/customer_activity/ds={d.ds} failed: {detail}"


CASES = [
    csv_case("missing-column", lambda g: drop_column(g, "sessions"), "ingest",
             lambda d: f"{d.uri()}: missing column(s) ['sessions']; the file has "
                       f"{[c for c in HEADER if c != 'sessions']}"),
    csv_case("renamed-column", lambda g: rename_column(g, "sessions", "session_count"), "ingest",
             lambda d: f"{d.uri()}: missing column(s) ['sessions'] and has unexpected column(s) ['session_count']; "
                       f"the file has {[c if c != 'sessions' else 'session_count' for c in HEADER]}"),
    csv_case("extra-column", lambda g: add_column(g, "coupon_code", "XMAS"), "ingest",
             lambda d: f"{d.uri()}: unexpected column(s) ['coupon_code'] not in the schema "
                       "(set allow_extra_columns: true in the contract to drop them silently)"),
    csv_case("column-named-twice", lambda g: rename_column(g, "payment_failures", "sessions"), "ingest",
             lambda d: f"{d.uri()}: the header names column(s) ['sessions'] more than once"),
    # churn validates with `quarantine`: cells that break the contract's types are set aside at ingest
    # and counted in the share at validate (under `fail` they stop ingest: OPERATOR_CASES below).
    csv_case("text-in-int-column-beyond-share", lambda g: every_nth(g, "sessions", "many", 10), "validate",
             validation("120 of 1200 rows (10.0%) failed row checks, more than max_quarantine_share=5.0% "
                        "(contract: sessions expects int32: 120 row(s), first at activity.csv row 2, "
                        "activity.csv row 12, activity.csv row 22)")),
    csv_case("unparseable-date-beyond-share", lambda g: every_nth(g, "event_date", "20/11/2026", 15), "validate",
             validation("80 of 1200 rows (6.7%) failed row checks, more than max_quarantine_share=5.0% "
                        "(contract: event_date expects date: 80 row(s), first at activity.csv row 2, "
                        "activity.csv row 17, activity.csv row 32)")),
    csv_case("nan-in-required-column-beyond-share", lambda g: every_nth(g, "tenure_days", "NaN", 8), "validate",
             validation("150 of 1200 rows (12.5%) failed row checks, more than max_quarantine_share=5.0% "
                        "(contract: tenure_days must not be null: 150 row(s), first at activity.csv row 2, "
                        "activity.csv row 10, activity.csv row 18)")),
    csv_case("infinite-minutes-beyond-share", lambda g: every_nth(g, "minutes_watched", "inf", 10), "validate",
             validation("120 of 1200 rows (10.0%) failed row checks, more than max_quarantine_share=5.0% "
                        "(contract: minutes_watched is infinite: 120 row(s), first at activity.csv row 2, "
                        "activity.csv row 12, activity.csv row 22)")),
    csv_case("duplicate-key", lambda g: keep_rows(g, 0, CUSTOMERS, extra=(10,)), "ingest",
             lambda d: f"{d.uri()}: key ['customer_id'] is not unique: 1 duplicated key(s), e.g. "
                       f"customer_id='C000010' (2x) in rows 12, {CUSTOMERS + 2}"),
    Case("duplicate-key-across-files",
         lambda g: {"activity-a.csv": keep_rows(g, 0, 600), "activity-b.csv": keep_rows(g, 600, CUSTOMERS, (5,))},
         "ingest",
         lambda d: f"{d.uri('activity-a.csv')}, {d.uri('activity-b.csv')}: key ['customer_id'] is not unique: "
                   "1 duplicated key(s), e.g. customer_id='C000005' (2x) in activity-a.csv row 7, "
                   "activity-b.csv row 602"),
    csv_case("empty-file", lambda g: b"", "ingest", lambda d: f"{d.uri()}: the file is empty (0 bytes)"),
    csv_case("header-only", lambda g: g.split(b"\n", 1)[0] + b"\n", "ingest",
             lambda d: f"the drop is empty: 1 file(s), 0 rows ({d.uri()})"),
    Case("empty-folder", lambda g: {}, "wait_for_drop",
         lambda d: f"no drop at {d.folder_uri} after {SENSOR_TIMEOUT}s"),
    csv_case("truncated-in-quoted-field", truncate_in_quoted_field, "ingest",
             lambda d: f"{d.uri()}: cannot be read as csv: line 602 has 3 field(s) where the header has 9 "
                       "(the file ends in the middle of this line: truncated?): "
                       f"{line_of(d.files['activity.csv'], 602)!r}"),
    csv_case("unclosed-quote", lambda g: set_values(g, "plan", {4: '"premium'}), "ingest",
             lambda d: f"{d.uri()}: cannot be read as csv: line 6 has 3 field(s) where the header has 9 "
                       f"(a quote is not closed on this line): {line_of(d.files['activity.csv'], 6)!r}"),
    csv_case("latin-1-bytes", latin1_plan, "ingest",
             lambda d: f"{d.uri()}: line 7 is not valid UTF-8 (column 'plan': byte b'\\xe9' at offset "
                       f"{d.files['activity.csv'].index(LATIN1_E)}); re-export the drop as UTF-8"),
    csv_case("gzip-named-csv", lambda g: gzip.compress(g, mtime=0), "ingest",
             lambda d: f"{d.uri()}: line 1 is not valid UTF-8 (byte b'\\x8b' at offset 1); "
                       "re-export the drop as UTF-8"),
    csv_case("plan-outside-set-beyond-share", lambda g: every_nth(g, "plan", "platinum", 12), "validate",
             validation("100 of 1200 rows (8.3%) failed row checks, more than max_quarantine_share=5.0% "
                        "(expect_column_values_to_be_in_set(plan): 100 row(s), first rows 0, 12, 24)")),
    csv_case("negative-sessions-beyond-share", lambda g: every_nth(g, "sessions", "-1", 10), "validate",
             validation("120 of 1200 rows (10.0%) failed row checks, more than max_quarantine_share=5.0% "
                        "(expect_column_values_to_be_between(sessions): 120 row(s), first rows 0, 10, 20)")),
    csv_case("minutes-beyond-a-day-beyond-share", lambda g: every_nth(g, "minutes_watched", "2000.5", 5),
             "validate",
             validation("240 of 1200 rows (20.0%) failed row checks, more than max_quarantine_share=5.0% "
                        "(expect_column_values_to_be_between(minutes_watched): 240 row(s), first rows 0, 5, 10)")),
    csv_case("too-few-rows", lambda g: keep_rows(g, 0, 10), "validate",
             validation("expect_table_row_count_to_be_between (expected min_value=100; observed 10)")),
    csv_case("yesterdays-file-in-todays-folder", yesterdays_file, "ingest",
             lambda d: f"{d.uri()}: column 'event_date' must be {d.ds} (the partition date) but rows "
                       f"2-{CUSTOMERS + 1} hold {date.fromisoformat(d.ds) - timedelta(days=1)}: "
                       "is this yesterday's drop?"),
    Case("upload-in-progress-no-marker", lambda g: {"activity.csv": prefix_at_line_end(g, 0.4)}, "wait_for_drop",
         lambda d: f"the drop at {d.folder_uri} is not complete after {SENSOR_TIMEOUT}s: no {MARKER} marker yet "
                   "(the uploader writes it after the last file)", marker=False),
]
assert len({c.id for c in CASES}) == len(CASES) >= 16
CASE_DATES = {case.id: D0 + timedelta(days=1 + i) for i, case in enumerate(CASES)}
GOOD_DAY = D0 + timedelta(days=len(CASES) + 1)  # the drop with a few bad rows, under the share


@dataclass
class Nightly:
    home: Path
    lake: Lake
    champion: str

    def good_csv(self, day: date) -> bytes:
        return (self.home / "drops" / "activity" / day.isoformat() / "activity.csv").read_bytes()

    def write_drop(self, day: date, files: dict[str, bytes], marker: bool = True) -> Drop:
        """Replace the day's drop with `files`, then (unless `marker` is false) the completion marker."""
        folder = self.home / "drops" / "activity" / day.isoformat()
        for old in folder.iterdir():
            old.unlink()
        if marker and files:
            files = {**files, MARKER: b""}
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return Drop(ds=day.isoformat(), folder=folder, files=files)


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    home = tmp_path_factory.mktemp("reliability")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in skylift_settings(home).items():
            mp.setenv(key, value)
        days = (GOOD_DAY - FIRST).days + 1
        generate(home / "drops" / "activity", GOOD_DAY, days=days, n_customers=CUSTOMERS)
        generate_labels(home / "drops", GOOD_DAY, days=days, delay_days=3, n_customers=CUSTOMERS)
        for offset in range((D0 - FIRST).days + 1):
            night = run_dag_once("churn_nightly", FIRST + timedelta(days=offset))
            assert night.state == "success", night.task_states
        champion = champion_version(home)
        assert champion is not None, "the good night must deploy a champion"
        yield Nightly(home=home, lake=Lake(f"file://{home}/lake"), champion=champion)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_drop_stops_the_night(nightly, case, capfd):
    day = CASE_DATES[case.id]
    drop = nightly.write_drop(day, case.files(nightly.good_csv(day)), marker=case.marker)
    written = {name: sha256(drop.folder / name) for name in drop.files}
    lake_before = tree_digest(nightly.home / "lake")
    champion_before = champion_version(nightly.home)
    assert champion_before == nightly.champion

    result = run_dag_once("churn_nightly", day, sensor_timeout=SENSOR_TIMEOUT)

    # the run failed in the expected task, with the exact message
    assert result.state == "failed"
    task = TASKS[case.task]
    assert result.failed == [task], result.task_states
    error = result.errors[task]
    assert isinstance(error, case.error), repr(error)
    expected = case.message(drop)
    if case.task == "validate":
        report = nightly.lake.file_uri("reports", DATASETS["reports"], drop.ds, "validation.html")
        expected += f". Report: {report}"
    assert str(error) == expected
    # ... and the task's log says so (dag.test() logs tasks to this process's stdout, not to files)
    out, err = capfd.readouterr()
    assert expected in out + err

    # nothing after the failed task ran; everything before it succeeded
    position = NIGHTLY.index(task)
    assert {t: result.task_states[t] for t in NIGHTLY[:position]} == dict.fromkeys(NIGHTLY[:position], "success")
    assert {t: result.task_states[t] for t in NIGHTLY[position + 1:]} == dict.fromkeys(
        NIGHTLY[position + 1:], "upstream_failed")

    # no partition for the date past the failure; raw and the report only when validation judged it
    lake = nightly.lake
    if case.task == "validate":
        assert_clean_partition(lake, "raw", drop.ds)
        assert assert_clean_partition(lake, "reports", drop.ds).extra["status"] == "failed"
        downstream = ["validated", "quarantine", "features", "predictions"]
    else:
        downstream = ["raw", "reports", "validated", "quarantine", "features", "predictions"]
    for zone in downstream:
        assert_no_partition(lake, zone, drop.ds)
    changed = {path for path, digest in tree_digest(nightly.home / "lake").items() if lake_before.get(path) != digest}
    changed |= set(lake_before) - set(tree_digest(nightly.home / "lake"))
    assert all(f"/ds={drop.ds}/" in path for path in changed), sorted(changed)

    # the drop is untouched and the champion is the same model version
    assert {p.name: sha256(p) for p in drop.folder.iterdir()} == written
    assert champion_version(nightly.home) == champion_before


# ---- formats the shipped DAGs do not read: the ingest operator, called as Airflow calls it -------

def parquet_bytes(csv_data: bytes, **overrides: list) -> bytes:
    import pandas as pd

    frame = pd.read_csv(io.BytesIO(csv_data), dtype=str, keep_default_na=False)
    for column, values in overrides.items():
        frame[column] = values
    sink = io.BytesIO()
    frame.to_parquet(sink, index=False)
    return sink.getvalue()


def jsonl_bytes(csv_data: bytes) -> bytes:
    import pandas as pd

    return pd.read_csv(io.BytesIO(csv_data)).to_json(orient="records", lines=True).encode()


def broken_json_line(csv_data: bytes) -> bytes:
    lines = jsonl_bytes(csv_data).split(b"\n")
    lines[7] = lines[7][:40]  # cut inside a string value
    return b"\n".join(lines)


def json_text_in_int(csv_data: bytes) -> bytes:
    import json

    lines = jsonl_bytes(csv_data).split(b"\n")
    lines[3] = json.dumps({**json.loads(lines[3]), "sessions": "a few"}).encode()
    return b"\n".join(lines)


def sessions_as_text(csv_data: bytes) -> bytes:
    import pandas as pd

    frame = pd.read_csv(io.BytesIO(csv_data))
    sessions = frame["sessions"].astype(str)
    sessions[8] = "eleven"
    return parquet_bytes(csv_data, sessions=list(sessions))


def blank_line_then_bad_value(csv_data: bytes) -> bytes:
    lines = set_values(csv_data, "sessions", {20: "9.5"}).split(b"\n")
    return b"\n".join(lines[:5] + [b"", b""] + lines[5:])


@dataclass(frozen=True)
class OperatorCase:
    id: str
    fmt: str
    files: Callable[[bytes], dict[str, bytes]]
    message: Callable[[Drop], str]


OPERATOR_CASES = [
    OperatorCase("parquet-truncated", "parquet", lambda g: {"activity.parquet": parquet_bytes(g)[:-100]},
                 lambda d: f"{d.uri('activity.parquet')}: cannot be read as parquet (truncated or corrupt?): "
                           "Parquet magic bytes not found in footer. Either the file is corrupted or this is not a "
                           "parquet file."),
    OperatorCase("parquet-text-in-int-column", "parquet", lambda g: {"activity.parquet": sessions_as_text(g)},
                 lambda d: f"{d.uri('activity.parquet')}: column 'sessions' expects int32, got unparseable "
                           "value(s) at row 9: 'eleven'"),
    OperatorCase("jsonl-broken-line", "jsonl", lambda g: {"activity.jsonl": broken_json_line(g)},
                 lambda d: f"{d.uri('activity.jsonl')}: cannot be read as jsonl: line 8 is not valid JSON "
                           "(Unterminated string starting at character 39): "
                           f"{line_of(d.files['activity.jsonl'], 8)!r}"),
    OperatorCase("jsonl-text-in-int-column", "jsonl",
                 lambda g: {"activity.jsonl": json_text_in_int(g)},
                 lambda d: f"{d.uri('activity.jsonl')}: column 'sessions' expects int32, got unparseable "
                           "value(s) at row 4: 'a few'"),
    OperatorCase("upload-in-progress", "csv", lambda g: {".activity.csv.tmp": g[:500]},
                 lambda d: f"no csv files in the drop at {d.folder_uri} for ds={d.ds}"),
    OperatorCase("blank-lines-then-bad-value", "csv", lambda g: {"activity.csv": blank_line_then_bad_value(g)},
                 lambda d: f"{d.uri()}: column 'sessions' expects int32, got unparseable value(s) at row 24: '9.5'"),
    OperatorCase("int32-overflow", "csv", lambda g: {"activity.csv": set_values(g, "tenure_days", {0: "3000000000"})},
                 lambda d: f"{d.uri()}: column 'tenure_days' expects int32, got unparseable value(s) at "
                           "row 2: '3000000000'"),
    # Under `fail` (the ingest operator's default) a bad cell stops the day, as it always did.
    OperatorCase("text-in-int-column", "csv",
                 lambda g: {"activity.csv": set_values(g, "sessions", {3: "many", 7: "lots"})},
                 lambda d: f"{d.uri()}: column 'sessions' expects int32, got unparseable value(s) at "
                           "row 5: 'many', row 9: 'lots'"),
    OperatorCase("unparseable-date", "csv",
                 lambda g: {"activity.csv": set_values(g, "event_date", {2: "2026-02-30", 40: "20/11/2026"})},
                 lambda d: f"{d.uri()}: column 'event_date' expects date, got unparseable value(s) at "
                           "row 4: '2026-02-30', row 42: '20/11/2026'"),
    OperatorCase("null-in-required-column", "csv",
                 lambda g: {"activity.csv": set_values(g, "tenure_days", {10: "", 11: " "})},
                 lambda d: f"{d.uri()}: column 'tenure_days' must not be null; null in row(s) [12, 13]"),
    OperatorCase("infinity-in-float-column", "csv",
                 lambda g: {"activity.csv": set_values(g, "minutes_watched", {1: "inf", 4: "-Infinity"})},
                 lambda d: f"{d.uri()}: column 'minutes_watched' expects finite float64 values, got infinite "
                           "value(s) at row 3: inf, row 6: -inf (set allow_infinity: true on the column to accept "
                           "them)"),
]


@pytest.mark.parametrize("case", OPERATOR_CASES, ids=lambda c: c.id)
def test_bad_drop_in_other_formats_is_refused_at_ingest(nightly, case, context_for):
    from operators.ingest import IngestOperator

    day = date(2026, 12, 1) + timedelta(days=OPERATOR_CASES.index(case))
    (nightly.home / "drops" / "activity" / day.isoformat()).mkdir(parents=True, exist_ok=True)
    drop = nightly.write_drop(day, case.files(nightly.good_csv(D0)))
    written = {name: sha256(drop.folder / name) for name in drop.files}
    ingest = IngestOperator(task_id="ingest", pipeline="churn", source_uri="activity/{ds}/", source_format=case.fmt,
                            schema_file="include/schemas/customer_activity.yaml", dataset=DATASETS["raw"])
    with pytest.raises(ContractError) as caught:
        ingest.execute(context_for(drop.ds, task_id="ingest"))
    assert str(caught.value) == case.message(drop)
    assert_no_partition(nightly.lake, "raw", drop.ds)
    assert {p.name: sha256(p) for p in drop.folder.iterdir()} == written
    assert champion_version(nightly.home) == nightly.champion


# ---- drops that are not whole yet: refused at ingest by the source's completion rules -------------
# (a run without the sensor, such as a re-run, must not ingest half a drop either)

def _halves(good: bytes) -> dict[str, bytes]:
    lines = good.split(b"\n")
    return {"part-1.csv": b"\n".join(lines[:601]) + b"\n", "part-2.csv": b"\n".join([lines[0], *lines[601:]])}


def _manifest(files: dict[str, bytes]) -> bytes:
    import json

    return json.dumps({"files": [{"name": n, "size": len(d)} for n, d in files.items()]}).encode()


@dataclass(frozen=True)
class CompletionCase:
    id: str
    completion: dict
    files: Callable[[bytes], dict[str, bytes]]
    missing: Callable[[Drop], str]


COMPLETION_CASES = [
    CompletionCase("two-file-drop-one-landed", {"expected_files": 2},
                   lambda g: {"part-1.csv": _halves(g)["part-1.csv"]},
                   lambda d: "2 csv file(s) expected, 1 present (part-1.csv)"),
    CompletionCase("manifest-lists-a-file-not-landed", {"manifest": "_manifest.json"},
                   lambda g: {"part-1.csv": _halves(g)["part-1.csv"], "_manifest.json": _manifest(_halves(g))},
                   lambda d: "part-2.csv is listed in _manifest.json but not in the drop"),
    CompletionCase("manifest-file-still-growing", {"manifest": "_manifest.json"},
                   lambda g: {"activity.csv": prefix_at_line_end(g, 0.4),
                              "_manifest.json": _manifest({"activity.csv": g})},
                   lambda d: f"activity.csv has {len(d.files['activity.csv'])} bytes where _manifest.json says "
                             f"{listed_size(d, 'activity.csv')}"),
]


def listed_size(drop: Drop, name: str) -> int:
    import json

    return next(e["size"] for e in json.loads(drop.files["_manifest.json"])["files"] if e["name"] == name)


@pytest.mark.parametrize("case", COMPLETION_CASES, ids=lambda c: c.id)
def test_a_drop_that_is_not_whole_is_refused_at_ingest(nightly, case, context_for):
    from operators.ingest import IngestOperator
    from operators.spec.models import CompletionSpec

    day = date(2026, 12, 20) + timedelta(days=COMPLETION_CASES.index(case))
    (nightly.home / "drops" / "activity" / day.isoformat()).mkdir(parents=True, exist_ok=True)
    drop = nightly.write_drop(day, case.files(redate(nightly.good_csv(D0), day)), marker=False)
    written = {name: sha256(drop.folder / name) for name in drop.files}
    ingest = IngestOperator(task_id="ingest", pipeline="churn", source_uri="activity/{ds}/", source_format="csv",
                            schema_file="include/schemas/customer_activity.yaml", dataset=DATASETS["raw"],
                            completion=CompletionSpec(**case.completion))
    with pytest.raises(IncompleteDrop) as caught:
        ingest.execute(context_for(drop.ds, task_id="ingest"))
    assert str(caught.value) == (f"the drop at {drop.folder_uri} for ds={drop.ds} is not complete: "
                                 f"{case.missing(drop)}. Nothing was ingested; run the task again once the upload "
                                 "has finished")
    assert_no_partition(nightly.lake, "raw", drop.ds)
    assert {p.name: sha256(p) for p in drop.folder.iterdir()} == written
    assert champion_version(nightly.home) == nightly.champion


# ---- a few bad rows, under the share: the night goes on without them -----------------------------

def test_a_few_bad_rows_are_quarantined_and_the_night_succeeds(nightly):
    bad_plan, bad_sessions, bad_cells = [3, 250, 777], [10, 11, 999], [20, 500]
    good = nightly.good_csv(GOOD_DAY)
    data = set_values(set_values(good, "plan", dict.fromkeys(bad_plan, "platinum")), "sessions",
                      {**dict.fromkeys(bad_sessions, "-4"), **dict.fromkeys(bad_cells, "abc")})
    drop = nightly.write_drop(GOOD_DAY, {"activity.csv": data})
    result = run_dag_once("churn_nightly", GOOD_DAY)
    assert result.state == "success", result.task_states
    # The nights between the fixture's and this one never ran, so their outcome drops were never
    # ingested: training may skip (too few label-complete days); nothing fails and the day is scored.
    assert result.failed == [] and result.task_states["score"] == "success", result.task_states

    lake = nightly.lake
    quarantine = assert_clean_partition(lake, "quarantine", drop.ds)
    rows = lake.read_table("quarantine", DATASETS["quarantine"], drop.ds).to_pandas().sort_values("customer_id")
    assert quarantine.row_count == 8
    assert dict(zip(rows["customer_id"], rows["_reasons"], strict=True)) == {
        **{f"C{r:06d}": "expect_column_values_to_be_in_set(plan)" for r in bad_plan},
        **{f"C{r:06d}": "expect_column_values_to_be_between(sessions)" for r in bad_sessions},
        **{f"C{r:06d}": "contract: sessions expects int32" for r in bad_cells},
    }
    # a rejected cell keeps its text, and its row says where in the drop it was
    rejected = rows[rows["_reasons"].str.startswith("contract:")]
    assert list(rejected["sessions"]) == ["abc", "abc"]
    assert list(rejected["_source"]) == [f"{drop.uri()} row {r + 2}" for r in bad_cells]
    assert assert_clean_partition(lake, "raw", drop.ds).extra["rejected_rows"] == 2
    validated = assert_clean_partition(lake, "validated", drop.ds)
    assert validated.row_count == CUSTOMERS - 8
    assert validated.extra["quarantined_rows"] == 8
    kept = set(lake.read_table("validated", DATASETS["validated"], drop.ds).column("customer_id").to_pylist())
    assert kept.isdisjoint(rows["customer_id"])
    assert assert_clean_partition(lake, "reports", drop.ds).extra["status"] == "quarantined"
    # the bad rows never reached the features or the predictions
    features = set(lake.read_table("features", DATASETS["features"], drop.ds).column("customer_id").to_pylist())
    assert features == kept
    assert lake.require("predictions", DATASETS["predictions"], drop.ds).row_count == CUSTOMERS - 8
    assert sorted(p.name for p in drop.folder.iterdir()) == [MARKER, "activity.csv"]
    assert (drop.folder / "activity.csv").read_bytes() == data


def test_a_bad_re_drop_of_a_date_that_passed_is_withdrawn_and_refused_downstream(nightly):
    """A date that passed is re-dropped with bad data: its validated and quarantine partitions are
    withdrawn, and the features built from the old data are refused as stale by every reader."""
    from include.errors import StalePartition
    from include.lake import Lake

    ds = GOOD_DAY.isoformat()
    assert nightly.lake.manifest("predictions", DATASETS["predictions"], ds) is not None, "needs the previous test"
    data = every_nth(redate(nightly.good_csv(D0), GOOD_DAY), "plan", "platinum", 12)
    drop = nightly.write_drop(GOOD_DAY, {"activity.csv": data})
    result = run_dag_once("churn_nightly", GOOD_DAY)
    assert result.failed == [TASKS["validate"]], result.task_states
    assert (drop.folder / "activity.csv").read_bytes() == data
    for zone in ("validated", "quarantine"):
        assert_no_partition(nightly.lake, zone, ds)
    with pytest.raises(StalePartition, match=rf"features/churn_features/ds={ds} was built from data that has since "
                                             rf"changed: validated/customer_activity/ds={ds} \(withdrawn\)"):
        Lake(nightly.lake.root).require_fresh("features", DATASETS["features"], ds)
    scored = run_dag_once("churn_score", GOOD_DAY)
    assert scored.failed == ["score"], scored.task_states
    assert "was built from data that has since changed" in str(scored.errors["score"])


# ---- feature jobs that hand back nothing: features fails naming the job and the date -------------

def job_that_keeps_no_rows(activity, ds):
    return activity.where(activity.sessions < 0)


def test_a_feature_job_that_returns_no_rows_fails_features(skylift_env, context_for):
    """One Spark run; a job returning None or another type is checked without Spark in tests/unit/test_features.py."""
    import pyarrow as pa

    from include.errors import FeatureJobError
    from operators.features import FeaturesOperator

    lake = Lake(f"file://{skylift_env}/lake")
    with lake.publish("validated", "activity", "2026-11-20") as writer:
        writer.write_table(pa.table({"customer_id": ["C1", "C2"], "sessions": pa.array([3, 4], pa.int32())}))
    path = "tests.reliability.test_bad_inputs:job_that_keeps_no_rows"
    features = FeaturesOperator(task_id="features", pipeline="t", job=path, source_dataset="activity",
                                dataset=DATASETS["features"], lookback_days=1)
    with pytest.raises(FeatureJobError) as caught:
        features.execute(context_for("2026-11-20", task_id="features"))
    assert str(caught.value).startswith(f"feature job {path} returned no rows for ds=2026-11-20 from "
                                        "validated/activity/ds=2026-11-20; nothing was published")
    assert_no_partition(lake, "features", "2026-11-20")
