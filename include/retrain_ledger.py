"""Which dates of a pipeline triggered a retrain on drift: at most one per cooldown period.

The ledger is an append-only sequence of records in the lake,
`<lake>/monitor/<pipeline>/retrains/<seq>.json`, written with create-if-absent like the
registry's audit trail (`include.audit.create_if_absent`). A claim reads the records, refuses
when one lies within the cooldown of the date (either side: a backfill of an earlier date is held
to it too), and otherwise creates the next record. When two runs race, only one creates the
record; the other re-reads and finds it. A date that already holds a record gets it back (a retry,
a re-run): the retrain run's id is derived from the date, so triggering it again is a no-op.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from include.audit import create_if_absent
from include.errors import LakeError

ZONE = "monitor"
RECORD_FORMAT = "skylift.retrain/1"
_RECORD_FILE = re.compile(r"^(\d{8})\.json$")
CLAIM_ATTEMPTS = 50


@dataclass(frozen=True)
class RetrainRecord:
    """A retrain the drift check of `ds` triggered."""

    seq: int
    pipeline: str
    ds: str
    dag_id: str  # the DAG it triggers
    run_id: str  # that DAG run's id
    at: str
    actor: str  # dag_id/run_id of the run whose drift check claimed it
    reason: str

    def to_json(self) -> str:
        return json.dumps({"format": RECORD_FORMAT, **asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RetrainRecord:
        body = json.loads(text)
        if body.pop("format", None) != RECORD_FORMAT:
            raise ValueError(f"not a {RECORD_FORMAT} record")
        return cls(**body)


@dataclass(frozen=True)
class Claim:
    """The answer to "may the drift of `ds` trigger a retrain?"."""

    granted: bool
    record: RetrainRecord | None  # the record granting it (new, or the date's earlier one)
    blocked_by: RetrainRecord | None = None  # the record within the cooldown that refused it
    repeated: bool = False  # the date already held the record (a retry or re-run)

    def to_dict(self) -> dict[str, Any]:
        return {"granted": self.granted, "repeated": self.repeated,
                "record": asdict(self.record) if self.record else None,
                "blocked_by": asdict(self.blocked_by) if self.blocked_by else None}


def retrain_run_id(ds: str) -> str:
    """The retrain DAG run a drifted date triggers: one id per date, so a second trigger is a no-op."""
    return f"skylift_drift__{date.fromisoformat(ds).isoformat()}"


def blocking(records: list[RetrainRecord], ds: str, cooldown_days: int) -> RetrainRecord | None:
    """The newest record of another date within `cooldown_days` of `ds` (either side), if any."""
    day = date.fromisoformat(ds)
    close = [r for r in records if r.ds != ds and abs((date.fromisoformat(r.ds) - day).days) < cooldown_days]
    return close[-1] if close else None


class RetrainLedger:
    """The retrain records of one pipeline in one lake."""

    def __init__(self, lake: Any, pipeline: str) -> None:
        if not re.match(r"^[a-z][a-z0-9_]{0,62}$", pipeline):
            raise LakeError(f"pipeline name {pipeline!r} cannot name a ledger folder")
        self.lake = lake
        self.pipeline = pipeline

    @property
    def folder(self) -> str:
        return f"{self.lake.base}/{ZONE}/{self.pipeline}/retrains"

    def records(self) -> list[RetrainRecord]:
        """Every record, oldest first; an unreadable one is an error naming its file."""
        try:
            names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.lake.fs.ls(self.folder, detail=False)]
        except FileNotFoundError:
            return []
        found = []
        for name in sorted(n for n in names if _RECORD_FILE.match(n)):
            path = f"{self.folder}/{name}"
            try:
                found.append(RetrainRecord.from_json(self.lake.fs.cat_file(path).decode()))
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                raise LakeError(f"retrain record {self.lake.uri(path)} is unreadable ({exc}); fix or remove it: "
                                "the drift cooldown cannot be checked without it") from exc
        return found

    def claim(self, ds: str, cooldown_days: int, *, dag_id: str, actor: str, reason: str) -> Claim:
        """Record a retrain for `ds` unless another date's lies within the cooldown."""
        if cooldown_days < 1:
            raise ValueError(f"cooldown_days must be at least 1, got {cooldown_days}")
        for _ in range(CLAIM_ATTEMPTS):
            records = self.records()
            own = next((r for r in records if r.ds == ds), None)
            if own is not None:
                return Claim(granted=True, record=own, repeated=True)
            blocker = blocking(records, ds, cooldown_days)
            if blocker is not None:
                return Claim(granted=False, record=None, blocked_by=blocker)
            seq = records[-1].seq + 1 if records else 1
            record = RetrainRecord(seq=seq, pipeline=self.pipeline, ds=ds, dag_id=dag_id, run_id=retrain_run_id(ds),
                                   at=datetime.now(UTC).isoformat(), actor=actor, reason=reason[:2000])
            if create_if_absent(self.lake, f"{self.folder}/{seq:08d}.json", record.to_json().encode()):
                return Claim(granted=True, record=record)
        raise LakeError(f"could not record a retrain of pipeline {self.pipeline!r} for ds={ds}: {CLAIM_ATTEMPTS} "
                        "other writers got there first; retry")
