"""The model registry core: which version is champion, promoting one and rolling it back.

Airflow-free. Every function takes an `MlflowClient` bound explicitly to its tracking and
registry URIs (see `client_for`), so nothing here depends on process-global MLflow settings.

MLflow failures are translated into Skylift's error family, and "missing" is told apart from
"could not ask": only MLflow's RESOURCE_DOES_NOT_EXIST means a model or version is absent; a
locked SQLite store or an unreachable server is `RegistryUnavailable`, never "missing".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from include.audit import CONFLICT, FORCED, PROMOTE, ROLLBACK, AuditEvent, AuditTrail
from include.errors import (
    ChampionMoved,
    ModelVersionMissing,
    PromotionConflict,
    RegistryError,
    RegistryUnavailable,
    SmokeTestFailed,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
# A model-level tag that remembers the champion's version. MLflow drops an alias together with
# the version it points to, so without this record a deleted champion would look like "never
# promoted".
CHAMPION_RECORD_TAG = "skylift.champion_version"
# What a version is now: champion, retired (replaced by a promotion), rolled_back, rejected (by the
# gate). Rollback rewrites it, so a rolled-back version no longer looks promoted anywhere.
STATUS_TAG = "skylift.status"
STATUS_DETAIL_TAG = "skylift.status_detail"  # which audit event said so, when, by whom
MAX_TAG_CHARS = 5000  # MLflow's limit on a tag value

MISSING = "RESOURCE_DOES_NOT_EXIST"
# Error codes that mean "the registry could not answer", not "the answer is no".
UNAVAILABLE = frozenset({"TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR", "REQUEST_LIMIT_EXCEEDED",
                         "DEADLINE_EXCEEDED", "SERVICE_UNDER_MAINTENANCE", "ENDPOINT_NOT_FOUND"})


def client_for(tracking_uri: str, registry_uri: str | None = None) -> MlflowClient:
    """A client bound to one tracking store and registry (the registry follows the tracking URI)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


def error_code(exc: BaseException) -> str:
    """MLflow's error code for `exc` ("" when it carries none)."""
    return str(getattr(exc, "error_code", "") or "")


def is_missing(exc: BaseException) -> bool:
    """True only when MLflow said the resource does not exist."""
    return error_code(exc) == MISSING


def where(client: Any) -> str:
    """The registry's address for messages, without credentials."""
    from urllib.parse import urlsplit, urlunsplit

    uri = str(getattr(client, "_registry_uri", None) or getattr(client, "tracking_uri", "") or "?")
    parts = urlsplit(uri)
    if not (parts.password or parts.username):
        return uri
    return urlunsplit(parts._replace(netloc=f"***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


@contextmanager
def translated(client: Any, action: str, missing: str | None = None) -> Iterator[None]:
    """Turn MLflow and transport failures of `action` into Skylift registry errors.

    RESOURCE_DOES_NOT_EXIST becomes `ModelVersionMissing` with the message `missing` when one is
    given; otherwise it is left to the caller (only it knows what "missing" means there).
    """
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if is_missing(exc):
            if missing:
                raise ModelVersionMissing(f"{missing} ({_first_line(exc)})") from exc
            raise
        code = error_code(exc)
        if code in UNAVAILABLE or "database is locked" in str(exc):
            raise RegistryUnavailable(
                f"the model registry at {where(client)} is unavailable while {action} ({code}: {_first_line(exc)}); "
                "nothing was changed by this step: retry the task once the registry answers (a SQLite store "
                "is locked while another process writes to it)") from exc
        raise RegistryError(f"the model registry at {where(client)} refused {action} ({code}: "
                            f"{_first_line(exc)})") from exc
    except OSError as exc:  # connection refused, DNS, timeouts below MLflow's REST layer
        raise RegistryUnavailable(f"the model registry at {where(client)} cannot be reached while {action} "
                                  f"({_first_line(exc)}); retry the task once it answers") from exc


def registered_model(client: Any, model: str) -> Any | None:
    """The registered model, or None when it does not exist."""
    from mlflow.exceptions import MlflowException

    with translated(client, f"reading model {model!r}"):
        try:
            return client.get_registered_model(model)
        except MlflowException as exc:
            if is_missing(exc):
                return None
            raise


def version_exists(client: Any, model: str, version: str) -> bool:
    from mlflow.exceptions import MlflowException

    with translated(client, f"reading version {version} of model {model!r}"):
        try:
            client.get_model_version(model, str(version))
        except MlflowException as exc:
            if is_missing(exc):
                return False
            raise
    return True


def _existing_versions(client: Any, model: str) -> str:
    try:
        with translated(client, f"listing the versions of model {model!r}"):
            found = client.search_model_versions(f"name = '{model}'", max_results=50)
    except RegistryError:
        return "unknown"
    numbers = sorted((int(v.version) for v in found), reverse=True)[:10]
    return ", ".join(map(str, numbers)) or "none"


def _deleted(client: Any, model: str, version: str, how: str) -> ModelVersionMissing:
    return ModelVersionMissing(
        f"alias {CHAMPION} of model {model!r} {how} version {version}, which no longer exists (existing versions: "
        f"{_existing_versions(client, model)}): point the alias at a version you trust with "
        f"MlflowClient().set_registered_model_alias({model!r}, {CHAMPION!r}, '<version>'), "
        "or re-run the deploy task to gate a new challenger")


def champion_version(client: Any, model: str) -> str | None:
    """The champion's version; None only when no champion alias exists (never promoted, or removed).

    Raises `ModelVersionMissing` when the champion's version was deleted, `RegistryUnavailable`
    when the registry cannot be read.
    """
    found = registered_model(client, model)
    if found is None:
        return None
    aliases = {str(k): str(v) for k, v in (getattr(found, "aliases", None) or {}).items()}
    tags = getattr(found, "tags", None) or {}
    if CHAMPION in aliases:
        version = aliases[CHAMPION]
        if not version_exists(client, model, version):
            raise _deleted(client, model, version, "points to")
        return version
    recorded = tags.get(CHAMPION_RECORD_TAG)
    if recorded and not version_exists(client, model, recorded):
        raise _deleted(client, model, recorded, "pointed to")
    return None


def set_version_tag(client: Any, model: str, version: str, key: str, value: str) -> None:
    with translated(client, f"tagging version {version} of model {model!r}"):
        client.set_model_version_tag(model, str(version), key, value[:MAX_TAG_CHARS])


def set_alias(client: Any, model: str, alias: str, version: str) -> None:
    with translated(client, f"setting alias {alias} of model {model!r} to version {version}"):
        client.set_registered_model_alias(model, alias, str(version))


def set_status(client: Any, model: str, version: str, status: str, detail: str) -> None:
    """Say what a version is now (one of STATUSES) and since which audit event; replaces the last say."""
    set_version_tag(client, model, version, STATUS_TAG, status)
    set_version_tag(client, model, version, STATUS_DETAIL_TAG, detail)


def current_champion(client: Any, trail: AuditTrail, model: str) -> str | None:
    """The champion as the audit trail records it, checked against the MLflow alias.

    Before the first audit event the alias alone decides (a model promoted before Skylift kept a
    trail). Afterwards an alias that disagrees with the trail was moved outside Skylift, and no
    promotion may build on either until someone says which is right.
    """
    alias = champion_version(client, model)
    last = trail.last(model)
    if last is None or last.after == alias:
        return alias
    return _drifted(model, alias, last)


def _drifted(model: str, alias: str | None, last: Any) -> Any:
    raise RegistryError(
        f"alias {CHAMPION} of model {model!r} points to version {alias or 'none'}, but the audit trail says version "
        f"{last.after or 'none'} (event {last.seq}, {last.action} by {last.actor}): the alias was moved outside "
        f"Skylift. Record which one is right with `skylift rollback {model} --to <version>`; nothing was changed")


def promote(client: Any, trail: AuditTrail, model: str, version: str, expected: str | None, *, actor: str,
            reason: str, forced: bool = False, details: dict[str, Any] | None = None) -> AuditEvent:
    """Make `version` champion, provided the champion is still `expected` (compare-and-set).

    The audit trail decides the race (see include/audit.py); only the winner moves the alias. A
    loser records a `conflict` event and raises `PromotionConflict` naming the winner.
    """
    initial = champion_version(client, model) if trail.last(model) is None else None
    try:
        event = trail.append(model, FORCED if forced else PROMOTE, version=version, after=version, expect=expected,
                             compare=True, actor=actor, reason=reason, details=details, initial=initial)
    except ChampionMoved as moved:
        lost = trail.append(model, CONFLICT, version=version, actor=actor, details=details, initial=initial,
                            reason=f"lost the race: the champion moved from v{expected or '-'} to "
                                   f"v{moved.current or '-'} while v{version} was gated")
        winner = next((e for e in reversed(trail.events(model)) if e.moved), None)
        by = f" by {winner.actor} ({winner.action}, event {winner.seq})" if winner else ""
        raise PromotionConflict(
            f"version {version} of model {model!r} was not promoted: the champion moved from version "
            f"{expected or 'none'} to {moved.current or 'none'}{by} while it was being gated. Recorded as audit "
            f"event {lost.seq}; re-run the deploy task to gate it against the new champion") from moved
    try:
        _move_alias(client, trail, model, event, retired="retired")
    except RegistryError as exc:
        _undo(client, trail, model, event, exc)
    return event


def _undo(client: Any, trail: AuditTrail, model: str, event: AuditEvent, cause: RegistryError) -> None:
    """MLflow did not take a move the audit trail recorded: record and make the move back, then fail."""
    try:
        undone = roll_back(client, trail, model, event.before, actor=event.actor, expected=event.after,
                           reason=f"MLflow did not take audit event {event.seq}: {cause}"[:2000])
    except Exception as undo:
        raise RegistryError(
            f"promoting version {event.after} of model {model!r} was recorded (audit event {event.seq}) but MLflow "
            f"did not take it ({cause}), and undoing it failed too ({undo}): once the registry answers, run "
            f"`skylift rollback {model} --to {event.before or '<version>'}`") from undo
    raise RegistryError(f"promoting version {event.after} of model {model!r} failed while moving the MLflow alias "
                        f"({cause}); undone and recorded as audit event {undone.seq}") from cause


def roll_back(client: Any, trail: AuditTrail, model: str, to: str | None, *, actor: str, reason: str,
              action: str = ROLLBACK, expected: Any = ...) -> AuditEvent:
    """Make `to` champion again (None: no champion), recording it; the replaced version's status
    becomes `rolled_back`. With `expected`, only while that version is still champion."""
    if to is not None and not version_exists(client, model, to):
        raise ModelVersionMissing(f"model {model!r} has no version {to} to roll back to (existing versions: "
                                  f"{_existing_versions(client, model)})")
    last = trail.last(model)
    initial = champion_version(client, model) if last is None else None
    current = initial if last is None else last.after
    event = trail.append(model, action, version=to, after=to, compare=True, actor=actor, reason=reason,
                         expect=current if expected is ... else expected, initial=initial)
    _move_alias(client, trail, model, event, retired="rolled_back")
    return event


def _move_alias(client: Any, trail: AuditTrail, model: str, event: AuditEvent, retired: str) -> None:
    """Make MLflow say what audit event `event` decided: the alias, the champion record, the statuses."""
    said = f"{event.action} at {event.at[:19]}Z by {event.actor} (audit event {event.seq})"
    if event.after is not None:
        set_alias(client, model, CHAMPION, event.after)
        with translated(client, f"recording the champion of model {model!r}"):
            client.set_registered_model_tag(model, CHAMPION_RECORD_TAG, str(event.after))
        set_status(client, model, event.after, "champion", said)
    else:
        _remove_champion(client, model)
    if event.before is not None and event.before != event.after and version_exists(client, model, event.before):
        set_status(client, model, event.before, retired, f"replaced by v{event.after or '-'}: {said}")


def _remove_champion(client: Any, model: str) -> None:
    from mlflow.exceptions import MlflowException

    with translated(client, f"removing alias {CHAMPION} of model {model!r}"):
        try:
            client.delete_registered_model_alias(model, CHAMPION)
        except MlflowException as exc:
            if not is_missing(exc):
                raise
        try:
            client.delete_registered_model_tag(model, CHAMPION_RECORD_TAG)
        except MlflowException as exc:
            if not is_missing(exc):
                raise


def smoke_test(model: str, version: str, rows: Any) -> int:
    """Score `rows` through the champion alias, exactly as batch inference resolves it, and require
    finite scores equal to version `version`'s own: the alias must serve that version. Returns n."""
    import numpy as np

    from include import scoring

    through_alias = scoring.load(f"models:/{model}@{CHAMPION}").predict(rows)
    own = scoring.load(f"models:/{model}/{version}").predict(rows)
    bad = int((~np.isfinite(through_alias)).sum())
    if bad:
        raise SmokeTestFailed(f"{model}@{CHAMPION} (version {version}) returned NaN or infinite scores for {bad} "
                              f"of {len(rows)} smoke-test rows")
    if not np.allclose(through_alias, own, rtol=1e-9, atol=1e-12):
        differ = int((~np.isclose(through_alias, own, rtol=1e-9, atol=1e-12)).sum())
        raise SmokeTestFailed(f"{model}@{CHAMPION} does not score like version {version}: {differ} of {len(rows)} "
                              "smoke-test rows differ (the alias serves another model)")
    return len(rows)


def create_model(client: Any, model: str, tags: dict[str, str]) -> None:
    """Create the registered model (fine when another process just created it)."""
    from mlflow.exceptions import MlflowException

    with translated(client, f"creating model {model!r}"):
        try:
            client.create_registered_model(model, tags=tags)
        except MlflowException as exc:
            if error_code(exc) != "RESOURCE_ALREADY_EXISTS":  # created concurrently: fine
                raise


def version_from_run(client: Any, model: str, run_id: str) -> Any | None:
    """The version of `model` already registered from MLflow run `run_id`, if any."""
    with translated(client, f"searching model {model!r} for run {run_id}"):
        found = client.search_model_versions(f"name = '{model}' and run_id = '{run_id}'")
    return found[0] if found else None
