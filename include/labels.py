"""Point-in-time labels: which feature days have complete outcomes, and the join that pairs a
feature row with the outcome that belongs to it.

Outcomes arrive later than the features they belong to. The label drop that lands on day L
holds outcomes for earlier feature days, named by its `as_of` column; the outcomes of feature
day d are complete in the drop of d + delay_days. A training set built on day D may therefore
use only feature days d with d + delay_days <= D, and only label drops that landed on or
before D: nothing from after D, so a backfill sees exactly what the night itself saw.

Pure pandas; no lake and no Airflow. The operators read the partitions and pass them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from include.errors import LabelError

if TYPE_CHECKING:  # pandas is imported where rows are joined: the spec compiler imports this module
    import pandas as pd

# The feature date of each row in a joined frame (feature partitions carry no date column).
FEATURE_DATE = "feature_ds"
SHOWN = 5  # offending keys quoted in an error


@dataclass(frozen=True)
class LabelPlan:
    """How label rows meet feature rows (the spec's `labels:` section)."""

    column: str
    key: tuple[str, ...]
    as_of: str = "as_of"
    delay_days: int = 0


@dataclass(frozen=True)
class LabelInput:
    """What a training run reads its labels from: the label dataset's partitions that had landed
    by `cutoff`, and which feature days form the time-based holdout."""

    dataset: str
    plan: LabelPlan
    arrivals: tuple[str, ...]
    cutoff: str
    holdout_dates: tuple[str, ...]

    def as_config(self) -> dict:
        return {"dataset": self.dataset, "column": self.plan.column, "key": list(self.plan.key),
                "as_of": self.plan.as_of, "delay_days": self.plan.delay_days, "arrivals": list(self.arrivals),
                "cutoff": self.cutoff, "holdout_dates": list(self.holdout_dates)}

    @classmethod
    def from_config(cls, raw: dict) -> LabelInput:
        plan = LabelPlan(column=raw["column"], key=tuple(raw["key"]), as_of=raw.get("as_of", "as_of"),
                         delay_days=int(raw.get("delay_days", 0)))
        return cls(dataset=raw["dataset"], plan=plan, arrivals=tuple(raw["arrivals"]), cutoff=raw["cutoff"],
                   holdout_dates=tuple(raw["holdout_dates"]))


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise LabelError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def complete_days(run_date: str, delay_days: int, window_days: int) -> list[str]:
    """The `window_days` newest feature days whose outcomes are complete on `run_date`, oldest first."""
    last = _day(run_date) - timedelta(days=delay_days)
    return [(last - timedelta(days=offset)).isoformat() for offset in range(window_days - 1, -1, -1)]


def labelled_days(days: list[str], delay_days: int, landed: Iterable[str]) -> tuple[list[str], list[str]]:
    """(feature days whose completing label drop, of day + delay_days, has landed; days still waiting
    for it). A day is label-complete only once that drop is in: a night that did not run, or a late
    outcome feed, leaves its days out of training and the holdout instead of half-labelled."""
    arrived = set(landed)
    ready, waiting = [], []
    for day in days:
        (ready if completing_drop(day, delay_days) in arrived else waiting).append(day)
    return ready, waiting


def completing_drop(day: str, delay_days: int) -> str:
    """The label drop in which the outcomes of feature day `day` are complete."""
    return (_day(day) + timedelta(days=delay_days)).isoformat()


def time_split(days: list[str], holdout_days: int) -> tuple[list[str], list[str]]:
    """(older days to train on, newest `holdout_days` days to hold out); both must be non-empty."""
    ordered = sorted(days)
    if len(ordered) <= holdout_days:
        raise LabelError(f"{len(ordered)} label-complete feature day(s) ({', '.join(ordered) or 'none'}) cannot be "
                         f"split into training days and {holdout_days} holdout day(s): at least "
                         f"{holdout_days + 1} are needed")
    return ordered[:-holdout_days], ordered[-holdout_days:]


def point_in_time_join(features: Mapping[str, pd.DataFrame], labels: Mapping[str, pd.DataFrame],
                       plan: LabelPlan, cutoff: str) -> pd.DataFrame:
    """Feature rows of the given days with their outcome, as known on `cutoff`.

    `features` maps a feature date to that day's rows; `labels` maps a label drop's arrival date
    to its rows (key, `as_of`, label column). Drops that arrived after `cutoff` are ignored, and
    so are label rows whose `as_of` is not one of the feature days. A feature row without an
    outcome is left out (its outcome is not known yet). The same key and `as_of` labelled twice
    is refused: which outcome is true cannot be decided here. Returns the feature columns, the
    label column and FEATURE_DATE, in feature-day then feature-row order.
    """
    import pandas as pd

    _day(cutoff)
    late = sorted(d for d in features if _day(d) > _day(cutoff))
    if late:
        raise LabelError(f"feature day(s) {late} are after the cut-off {cutoff}: a training set built on {cutoff} "
                         "may not use them")
    key = list(plan.key)
    frames = []
    for day in sorted(features):
        frame = features[day]
        if plan.column in frame.columns:
            raise LabelError(f"the features of {day} already hold the label column {plan.column!r}: the feature "
                             "job must not output the label (it would be known before it happened)")
        missing = [k for k in key if k not in frame.columns]
        if missing:
            raise LabelError(f"the features of {day} lack the label key column(s) {missing}")
        frames.append(frame.assign(**{FEATURE_DATE: day}))
    if not frames:
        raise LabelError("no feature days to join labels to")
    rows = pd.concat(frames, ignore_index=True)
    known = _known_labels(labels, plan, cutoff, set(features))
    joined = rows.merge(known, on=[*key, FEATURE_DATE], how="inner", validate="many_to_one", sort=False)
    return joined.reset_index(drop=True)


def _known_labels(labels: Mapping[str, pd.DataFrame], plan: LabelPlan, cutoff: str, days: set[str]) -> pd.DataFrame:
    """Label rows that had arrived by `cutoff` for the given feature days: key, FEATURE_DATE, label."""
    import pandas as pd

    key = list(plan.key)
    wanted = [*key, plan.as_of, plan.column]
    parts = []
    for arrival in sorted(labels):
        if _day(arrival) > _day(cutoff):
            continue  # not yet landed on the cut-off day: never seen
        frame = labels[arrival]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise LabelError(f"the label drop of {arrival} lacks column(s) {missing} (has {list(frame.columns)})")
        # A row whose outcome is still empty labels nothing yet (a source that carries features and,
        # later, their outcome has such rows for the days not over).
        part = frame.loc[frame[plan.column].notna(), wanted].copy()
        part[FEATURE_DATE] = _iso_dates(part.pop(plan.as_of), arrival, plan.as_of)
        part["_arrival"] = arrival
        parts.append(part[part[FEATURE_DATE].isin(days)])
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in [*key, FEATURE_DATE, plan.column]})
    known = pd.concat(parts, ignore_index=True)
    twice = known.duplicated([*key, FEATURE_DATE], keep=False)
    if twice.any():
        shown = known[twice].sort_values([*key, FEATURE_DATE]).head(SHOWN * 2)
        examples = "; ".join(
            f"{dict(zip(key, (row[k] for k in key), strict=True))} as of {row[FEATURE_DATE]} in the drop of "
            f"{row['_arrival']}" for _, row in shown.iterrows())
        raise LabelError(f"{int(twice.sum())} label rows give a second outcome for the same key and {plan.as_of}: "
                         f"{examples}. Correct the label drops so each outcome is delivered once")
    return known.drop(columns="_arrival")


def _iso_dates(values: pd.Series, arrival: str, column: str) -> pd.Series:
    import pandas as pd

    parsed = pd.to_datetime(values, errors="coerce")
    if parsed.isna().any():
        bad = values[parsed.isna()].head(SHOWN).tolist()
        raise LabelError(f"the label drop of {arrival} has {int(parsed.isna().sum())} row(s) whose {column!r} is not "
                         f"a date, e.g. {bad}")
    return parsed.dt.strftime("%Y-%m-%d")
