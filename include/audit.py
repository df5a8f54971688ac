"""The registry's audit trail, which is also the source of truth for "who is champion".

Per model, the lake holds an append-only sequence of events under
`<lake>/registry/<model>/events/<seq>.json`, one immutable JSON file per event (promote, reject,
conflict, rollback, ...). Each event records the champion before and after it, so the current
champion is the `after` of the newest event.

Compare-and-set without a lock server: event N+1 is written with create-if-absent (a hard link
of a complete temporary file on local disk, a conditional PUT `If-None-Match: *` on S3). A writer
reads the newest event N, checks that the champion is still the one it expects, then creates
N+1. If another writer created N+1 first, the create fails, the writer re-reads and re-checks:
two promotions racing from the same champion cannot both win. The MLflow alias is moved only
after the event is written (see `include.registry`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from include.errors import ChampionMoved, LakeError, RegistryError

ZONE = "registry"
EVENT_FORMAT = "skylift.audit/1"
_EVENT_FILE = re.compile(r"^(\d{8})\.json$")
APPEND_ATTEMPTS = 50  # writers that only add a record retry this often under contention

# What an event did. Only the first group can move the champion.
PROMOTE, FORCED, ROLLBACK, SMOKE_ROLLBACK = "promote", "forced_promote", "rollback", "smoke_test_rollback"
REJECT, CONFLICT = "reject", "conflict"
# A person's answer to a promotion the gate cleared (include/approval.py); the promotion itself follows as `promote`.
APPROVE, APPROVAL_REJECT, APPROVAL_TIMEOUT = "approve", "approval_reject", "approval_timeout"
ACTIONS = (PROMOTE, FORCED, ROLLBACK, SMOKE_ROLLBACK, REJECT, CONFLICT, APPROVE, APPROVAL_REJECT, APPROVAL_TIMEOUT)


@dataclass(frozen=True)
class AuditEvent:
    """One change (or refused change) of a model's champion."""

    seq: int
    model: str
    action: str
    version: str | None  # the version the event is about (the challenger, the rollback target)
    before: str | None  # champion before the event
    after: str | None  # champion after it (== before when nothing moved)
    at: str
    actor: str  # "dag_id/run_id" of a DAG run, or "user:<name>" for the CLI
    reason: str
    details: dict[str, Any] = field(default_factory=dict)  # the gate's numbers, the report's URI

    @property
    def moved(self) -> bool:
        return self.before != self.after

    def to_json(self) -> str:
        return json.dumps({"format": EVENT_FORMAT, **asdict(self)}, indent=2, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> AuditEvent:
        body = json.loads(text)
        if body.pop("format", None) != EVENT_FORMAT:
            raise ValueError(f"not a {EVENT_FORMAT} record")
        return cls(**body)

    def line(self) -> str:
        """One line for `skylift history`."""
        move = f"v{self.before or '-'} -> v{self.after or '-'}" if self.moved else f"stays v{self.after or '-'}"
        about = f" v{self.version}" if self.version else ""
        return f"{self.seq:>4}  {self.at[:19]}Z  {self.action}{about}: {move}  by {self.actor}  {self.reason}"


class AuditTrail:
    """The events of every model in one lake."""

    def __init__(self, lake: Any) -> None:
        self.lake = lake

    def folder(self, model: str) -> str:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$", model):
            raise RegistryError(f"model name {model!r} cannot name an audit folder")
        return f"{self.lake.base}/{ZONE}/{model}/events"

    def events(self, model: str) -> list[AuditEvent]:
        """Every event of `model`, oldest first; an unreadable record is an error naming its file."""
        folder = self.folder(model)
        try:
            names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.lake.fs.ls(folder, detail=False)]
        except FileNotFoundError:
            return []
        found = []
        for name in sorted(n for n in names if _EVENT_FILE.match(n)):
            path = f"{folder}/{name}"
            try:
                event = AuditEvent.from_json(self.lake.fs.cat_file(path).decode())
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                raise LakeError(f"audit record {self.lake.uri(path)} is unreadable ({exc}); restore it from a "
                                "backup: the champion of the model cannot be known without it") from exc
            found.append(event)
        return found

    def last(self, model: str) -> AuditEvent | None:
        events = self.events(model)
        return events[-1] if events else None

    def champion(self, model: str) -> str | None:
        last = self.last(model)
        return last.after if last else None

    def previous_champion(self, model: str) -> str | None:
        """The champion before the current one took over (what a rollback returns to by default)."""
        events = self.events(model)
        current = events[-1].after if events else None
        for event in reversed(events):
            if event.moved and event.after == current:
                return event.before
        return None

    def append(self, model: str, action: str, *, version: str | None, actor: str, reason: str,
               after: str | None = None, expect: str | None = None, compare: bool = False,
               details: dict[str, Any] | None = None, initial: str | None = None) -> AuditEvent:
        """Write the next event. With `compare`, only while the champion is `expect` (else
        `ChampionMoved`), and the event makes `after` champion; without, the champion stays.

        `initial` is the champion to assume before the first event (the MLflow alias of a model
        promoted before Skylift kept an audit trail)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}; actions are {ACTIONS}")
        for _ in range(APPEND_ATTEMPTS):
            last = self.last(model)
            seq = last.seq + 1 if last else 1
            current = last.after if last else initial
            if compare and current != expect:
                raise ChampionMoved(model, expect, current, seq - 1)
            event = AuditEvent(seq=seq, model=model, action=action, version=version, before=current,
                               after=after if compare else current, at=datetime.now(UTC).isoformat(),
                               actor=actor, reason=reason, details=dict(details or {}))
            if self._create(f"{self.folder(model)}/{seq:08d}.json", event.to_json().encode()):
                return event
        raise RegistryError(f"could not append to the audit trail of model {model!r}: {APPEND_ATTEMPTS} other "
                            "writers got there first; retry")

    def _create(self, path: str, data: bytes) -> bool:
        return create_if_absent(self.lake, path, data)


def create_if_absent(lake: Any, path: str, data: bytes) -> bool:
    """Create `path` in `lake` holding `data` unless it exists (then False); readers never see it
    half-written. The compare-and-set step of every append-only record sequence in the lake."""
    if lake.is_local:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{secrets.token_hex(6)}.tmp"
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if the name exists
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
    bucket, key, _ = lake.fs.split_path(path)
    try:
        lake.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
    except OSError as exc:
        response = getattr(exc.__cause__, "response", None) or {}
        code = str(response.get("Error", {}).get("Code"))
        if not (isinstance(exc, FileExistsError) or code in {"PreconditionFailed", "412",
                                                              "ConditionalRequestConflict", "409"}):
            raise
        # A retried PUT whose first try went through answers 412 too; each record is unique (its
        # time has microseconds), so the same bytes there mean that record is ours.
        try:
            return lake.fs.cat_file(path) == data
        except FileNotFoundError:
            return False
    finally:
        lake.fs.invalidate_cache(os.path.dirname(path))
    return True
