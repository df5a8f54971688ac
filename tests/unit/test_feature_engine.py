"""Where a feature job runs: the spec's `features.engine`, auto's row threshold and a cluster master."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.errors import SpecError
from include.feature_engine import DEFAULT_DUCKDB_MAX_ROWS, choose_engine
from include.spark_hash import spark_xxhash64, xxh64
from operators.spec.compiler import dags_from_spec_file
from operators.spec.loader import load_spec

ROOT = Path(__file__).resolve().parents[2]
CHURN = (ROOT / "dags" / "pipelines" / "churn.yaml").read_text()
LOOKBACK = "  lookback_days: 7"


def spec_with(tmp_path: Path, lines: str) -> Path:
    assert LOOKBACK in CHURN
    folder = tmp_path / "pipelines"
    folder.mkdir()
    path = folder / "churn.yaml"
    path.write_text(CHURN.replace(LOOKBACK, LOOKBACK + lines, 1))
    return path


@pytest.mark.parametrize("master", ["local[*]", "local[2]", "local"])
def test_auto_runs_small_windows_on_duckdb_with_a_local_master(master):
    choice = choose_engine("auto", master, input_rows=DEFAULT_DUCKDB_MAX_ROWS)
    assert choice.engine == "duckdb"
    assert choice.reason == (f"auto: 20,000,000 input rows, at most duckdb_max_rows 20,000,000, and a local Spark "
                             f"master ({master})")


def test_auto_runs_windows_past_the_threshold_on_spark():
    choice = choose_engine("auto", "local[*]", input_rows=1_001, duckdb_max_rows=1_000)
    assert (choice.engine, choice.reason) == ("spark", "auto: 1,001 input rows exceed duckdb_max_rows 1,000")


def test_auto_runs_on_the_cluster_when_a_spark_master_is_configured_whatever_the_size():
    choice = choose_engine("auto", "spark://spark-master:7077", input_rows=10)
    assert (choice.engine, choice.reason) == ("spark", "auto: the Spark master spark://spark-master:7077 is a cluster")


@pytest.mark.parametrize("setting", ["spark", "duckdb"])
@pytest.mark.parametrize("master", ["local[*]", "spark://spark-master:7077"])
def test_an_explicit_engine_is_obeyed_whatever_the_master_and_size(setting, master):
    for rows in (0, 10**12):
        choice = choose_engine(setting, master, input_rows=rows, duckdb_max_rows=1)
        assert (choice.engine, choice.reason) == (setting, f"features.engine is {setting}")


def test_an_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="features.engine must be auto, spark or duckdb, not 'polars'"):
        choose_engine("polars", "local[*]", input_rows=1)  # type: ignore[arg-type]


def test_the_shipped_specs_default_to_auto_and_the_compiled_task_gets_the_setting(tmp_path):
    assert load_spec(ROOT / "dags" / "pipelines" / "churn.yaml").features.engine == "auto"
    path = spec_with(tmp_path, "\n  engine: duckdb\n  duckdb_max_rows: 1000")
    features = dags_from_spec_file(path)["churn_nightly"].get_task("features")
    assert (features.engine, features.duckdb_max_rows) == ("duckdb", 1000)


def test_an_engine_typo_is_a_spec_error_with_file_line_and_choices(tmp_path):
    path = spec_with(tmp_path, "\n  engine: duckbd")
    line = CHURN.splitlines().index(LOOKBACK) + 2
    with pytest.raises(SpecError, match=rf"churn.yaml:{line}: features.engine: Input should be 'auto', 'spark' or "
                                        r"'duckdb'"):
        load_spec(path)


def test_a_negative_threshold_is_a_spec_error(tmp_path):
    path = spec_with(tmp_path, "\n  duckdb_max_rows: -1")
    with pytest.raises(SpecError, match=r"churn.yaml:\d+: features.duckdb_max_rows: Input should be greater than or "
                                        r"equal to 0"):
        load_spec(path)


def test_xxh64_matches_the_specifications_reference_values():
    # The reference implementation's published digests (seed 0).
    assert [xxh64(data, seed=0) for data in (b"", b"a", b"abc")] == [
        0xEF46DB3751D8E999, 0xD24EC4F1A98C6E5B, 0x44BC2CF5AD770999]
    long = b"Nobody inspects the spammish repetition"  # past 32 bytes: the four-lane loop
    assert xxh64(long, seed=0) == 0xFBCEA83C8A378BF1


def test_spark_xxhash64_is_signed_with_seed_42():
    value = spark_xxhash64("JFK")
    assert -(2**63) <= value < 2**63
    unsigned = xxh64(b"JFK", seed=42)
    assert value == (unsigned - 2**64 if unsigned >= 2**63 else unsigned)
