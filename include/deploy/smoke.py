"""The smoke test of a live endpoint: it must serve the version just promoted and answer held-out
rows exactly as batch scoring (include/scoring.py) scores them."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from include.deploy.endpoint import Answer, Endpoint
from include.errors import RolloutFailed

RTOL, ATOL = 1e-9, 1e-12


def served_version(endpoint: Endpoint) -> tuple[str | None, str]:
    """(the version the endpoint serves, or None, and what it said)."""
    try:
        answer = endpoint.get("/version")
    except OSError as exc:
        return None, f"no answer from {endpoint.where} ({exc})"
    if answer.status != 200:
        return None, f"{endpoint.where}/version answered {answer.status}: {answer.text()}"
    try:
        return str(answer.json()["version"]), "ok"
    except (ValueError, KeyError, TypeError):
        return None, f"{endpoint.where}/version answered something else than the serving app's JSON: {answer.text()}"


def wait_for_version(endpoint: Endpoint, version: str, timeout: float, poll: float = 1.0) -> None:
    """Wait until the endpoint serves `version` (a local server follows the alias every few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        served, said = served_version(endpoint)
        if served == version:
            return
        if time.monotonic() > deadline:
            now = f"it serves version {served}" if served else said
            raise RolloutFailed(f"{endpoint.where} did not serve version {version} within {timeout:.0f}s: {now}")
        time.sleep(poll)


def payload(rows: Any) -> dict[str, Any]:
    """Rows in MLflow's `dataframe_split` format (NaN as null, times as ISO text)."""
    return {"dataframe_split": json.loads(rows.to_json(orient="split", index=False, date_format="iso"))}


def check_answers(endpoint: Endpoint, version: str, rows: Any, expected: np.ndarray) -> int:
    """Send `rows` to `/invocations`; require version `version` to answer with `expected` (batch
    scoring's scores for the same rows). Returns how many rows were checked."""
    served, said = served_version(endpoint)
    if served != version:
        raise RolloutFailed(f"{endpoint.where} serves version {served} instead of {version}" if served else said)
    try:
        answer: Answer = endpoint.post_json("/invocations", payload(rows))
    except OSError as exc:
        raise RolloutFailed(f"{endpoint.where}/invocations did not answer: {exc}") from exc
    if answer.status != 200:
        raise RolloutFailed(f"{endpoint.where}/invocations answered {answer.status}: {answer.text()}")
    from include.serving.app import VERSION_HEADER

    answered_by = answer.headers.get(VERSION_HEADER.lower())
    if answered_by is not None and answered_by != version:
        raise RolloutFailed(f"{endpoint.where}/invocations was answered by version {answered_by}, not {version}")
    try:
        got = np.asarray(answer.json()["predictions"], dtype="float64").reshape(-1)
    except (ValueError, KeyError, TypeError) as exc:
        raise RolloutFailed(f"{endpoint.where}/invocations answered no predictions: {answer.text()}") from exc
    if got.shape != expected.shape:
        raise RolloutFailed(f"{endpoint.where} answered {got.size} predictions for {len(rows)} smoke-test rows")
    differ = ~np.isclose(got, expected, rtol=RTOL, atol=ATOL)
    if differ.any():
        first = int(np.flatnonzero(differ)[0])
        raise RolloutFailed(f"{endpoint.where} does not answer like batch scoring of version {version}: "
                            f"{int(differ.sum())} of {len(rows)} smoke-test rows differ (row {first}: served "
                            f"{float(got[first])!r}, batch {float(expected[first])!r})")
    return len(rows)
