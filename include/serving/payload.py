"""Turn a request body into the typed frame a model's signature asks for, or a 4xx that says why.

The formats are MLflow's scoring protocol: JSON with exactly one of `dataframe_split`,
`dataframe_records`, `instances` or `inputs`, or CSV with a header row. MLflow's own parsers
(`mlflow.pyfunc.scoring_server`) read the formats; the column and type checks are Skylift's, so
that every problem is named (MLflow would truncate 2.5 to 2 for an integer column, and reports a
missing column only as a failed prediction).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd

from include.errors import PayloadError, UnsupportedContentType

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON = "application/json"
CSV = "text/csv"
SHOWN_ROWS = 3  # offending rows named in a message


def parse_payload(body: bytes, content_type: str | None, columns: list[str], dtypes: list[Any]) -> pd.DataFrame:
    """The request's rows as a frame holding `columns` with `dtypes` (extra columns are dropped)."""
    mime = _mime_type(content_type)
    if not body.strip():
        raise PayloadError("the request body is empty: send rows as JSON (e.g. {\"dataframe_split\": {\"columns\": "
                           f"{columns}, \"data\": [[...]]}}}}) or as CSV with a header row", "empty_body")
    frame = _read_json(body) if mime == JSON else _read_csv(body)
    if frame.empty:
        raise PayloadError("the payload holds no rows to score", "no_rows")
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise PayloadError(f"missing column(s) {missing} that the model's signature requires (it takes {columns}; "
                           f"the payload has {[str(c) for c in frame.columns]})", "missing_columns")
    return pd.DataFrame({name: _typed(frame[name], name, np.dtype(dtype))
                         for name, dtype in zip(columns, dtypes, strict=True)}, copy=False)


def _mime_type(content_type: str | None) -> str:
    mime, _, parameters = (content_type or "").partition(";")
    mime = mime.strip().lower()
    if mime not in (JSON, CSV):
        raise UnsupportedContentType(f"content type {content_type or '(none)'!r} is not supported: send "
                                     f"{JSON} or {CSV}", "content_type")
    for parameter in filter(None, (p.strip() for p in parameters.split(";"))):
        key, _, value = parameter.partition("=")
        if key.strip().lower() != "charset":
            raise UnsupportedContentType(f"content type parameter {parameter!r} is not supported (only charset)",
                                         "content_type")
        if value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedContentType(f"charset {value.strip()!r} is not supported: send UTF-8", "content_type")
    return mime


def _read_json(body: bytes) -> pd.DataFrame:
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PayloadError(f"the body is not valid UTF-8 JSON: {exc}", "bad_json") from exc
    if not isinstance(document, dict):
        raise PayloadError(f"the JSON body must be an object with one of the keys {list(FORMATS)}, "
                           f"not a {type(document).__name__}", "unknown_format")
    unknown = sorted(set(document) - set(FORMATS))
    given = [key for key in FORMATS if key in document]
    if unknown or len(given) != 1:
        what = f"unknown format key(s) {unknown}" if unknown else f"{len(given)} format keys {given}"
        params = " (Skylift's models take no params)" if "params" in unknown else ""
        raise PayloadError(f"{what}: the JSON body must hold exactly one of {list(FORMATS)}{params}",
                           "unknown_format")
    try:
        parsed = infer_and_parse_data(document)  # no schema: the typed checks below name the column
    except MlflowException as exc:
        raise PayloadError(f"{given[0]}: {exc.message}", "bad_format") from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # pandas on a shape it cannot read
        raise PayloadError(f"{given[0]} cannot be read as rows: {exc}", "bad_format") from exc
    return _as_frame(parsed, given[0])


def _as_frame(parsed: Any, key: str) -> pd.DataFrame:
    if isinstance(parsed, pd.DataFrame):
        return parsed
    if isinstance(parsed, dict):  # named columns (`inputs` / `instances` as columns or records)
        arrays = {str(name): np.atleast_1d(np.asarray(values)) for name, values in parsed.items()}
        lengths = {name: len(values) for name, values in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise PayloadError(f"{key}: the columns hold different numbers of values {lengths}", "bad_format")
        if any(values.ndim != 1 for values in arrays.values()):
            raise PayloadError(f"{key}: each column must hold one value per row, not nested lists", "bad_format")
        return pd.DataFrame(arrays)
    raise PayloadError(f"{key}: rows must name their columns (objects with column names, or a dict of "
                       "columns); a bare list of values has no column names to check", "unnamed_columns")


def _read_csv(body: bytes) -> pd.DataFrame:
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import parse_csv_input

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"the CSV body is not valid UTF-8: {exc}", "bad_csv") from exc
    try:
        return parse_csv_input(io.StringIO(text))
    except MlflowException as exc:
        raise PayloadError(f"the CSV body cannot be read: {exc.message}", "bad_csv") from exc


def _typed(values: pd.Series, name: str, dtype: np.dtype) -> np.ndarray:
    """`values` as `dtype`, refusing any value that would change or be lost on the way."""
    if dtype.kind in "fiu":
        numbers = _numbers(values, name, dtype)
        if dtype.kind in "iu" and numbers.dtype.kind == "f":
            nulls = np.isnan(numbers)
            if nulls.any():
                _refuse(values, nulls, name, dtype, "integers, not nulls")
            fractional = numbers != np.floor(numbers)
            if fractional.any():
                _refuse(values, fractional, name, dtype, "whole numbers")
        return numbers.astype(dtype)
    if dtype.kind == "b":
        flags = values.to_numpy(dtype=object)
        bad = np.array([not isinstance(v, bool | np.bool_) for v in flags], dtype=bool)
        if bad.any():
            _refuse(values, bad, name, dtype, "true or false")
        return flags.astype(bool)
    return values.to_numpy().astype(dtype)


def _numbers(values: pd.Series, name: str, dtype: np.dtype) -> np.ndarray:
    """The column as numbers (nulls as NaN); text is not a number here, whatever it spells."""
    if values.dtype.kind in "iu":
        return values.to_numpy()
    if values.dtype.kind == "f":  # the common case: no per-value work
        return values.to_numpy(dtype="float64", na_value=np.nan)
    cells = values.to_numpy(dtype=object)
    numbers = np.full(len(cells), np.nan)
    bad = np.zeros(len(cells), dtype=bool)
    for i, cell in enumerate(cells):
        if isinstance(cell, bool | np.bool_ | int | float | np.integer | np.floating):
            numbers[i] = float(cell)
        elif cell is not None and cell is not pd.NA:
            bad[i] = True
    if bad.any():
        _refuse(values, bad, name, dtype, "numbers")
    return numbers


def _refuse(values: pd.Series, bad: np.ndarray, name: str, dtype: np.dtype, wanted: str) -> None:
    rows = [int(i) if isinstance(i, int | np.integer) else i for i in list(values.index[bad])]
    shown = ", ".join(f"row {row}: {_plain(values.loc[row])!r}" for row in rows[:SHOWN_ROWS])
    more = f" and {len(rows) - SHOWN_ROWS} more" if len(rows) > SHOWN_ROWS else ""
    raise PayloadError(f"column {name!r} must hold {wanted} (the model's signature says {dtype}); {shown}{more}",
                       "wrong_type")


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value the client sent (2.5, not np.float64(2.5))."""
    return value.item() if isinstance(value, np.generic) else value
