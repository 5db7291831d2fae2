"""polars and pandas data frames give the command line's results."""

from __future__ import annotations

import json

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import medscreen
import medscreen.pandas
import medscreen.polars
from conftest import BOTH, cli_results, lines_of, rows_of_results, with_evidence_read
from flat import flat_records, flat_table, write_ndjson
from test_engine import same_results

PACKS = [["baclofen"], BOTH]


def rows_of_polars(df: pl.DataFrame) -> "list[dict]":
    assert df.columns == list(medscreen.OUTPUT_COLUMNS)
    return [with_evidence_read(row) for row in df.to_dicts()]


def rows_of_pandas(df: pd.DataFrame) -> "list[dict]":
    assert list(df.columns) == list(medscreen.OUTPUT_COLUMNS)
    return [with_evidence_read(row) for row in pa.Table.from_pandas(df, preserve_index=False).to_pylist()]


@pytest.mark.parametrize("packs", PACKS, ids=["baclofen", "both"])
def test_polars_json_column(cli, dataset, packs):
    df = pl.DataFrame({"profile": [line.decode() for line in lines_of(dataset)]})
    expected = rows_of_results(cli_results(cli, dataset, packs), packs)
    same_results(rows_of_polars(medscreen.polars.screen(df, packs=packs, threads=2)), expected)


@pytest.mark.parametrize("packs", PACKS, ids=["baclofen", "both"])
def test_pandas_json_column(cli, dataset, packs):
    df = pd.DataFrame({"profile": [line.decode() for line in lines_of(dataset)]})
    expected = rows_of_results(cli_results(cli, dataset, packs), packs)
    same_results(rows_of_pandas(medscreen.pandas.screen(df, packs=packs, threads=2)), expected)


def test_polars_and_pandas_flat_columns(cli, generated, tmp_path):
    table = flat_table(flat_records(lines_of(generated), medscreen.Engine().facts))
    expected = rows_of_results(cli_results(cli, write_ndjson(table, tmp_path / "flat.ndjson")), ["baclofen"])
    assert rows_of_polars(medscreen.polars.screen(pl.from_arrow(table))) == expected
    assert rows_of_pandas(medscreen.pandas.screen(table.to_pandas())) == expected


def test_pandas_missing_values_are_unknown_facts():
    """pandas writes a missing float as NaN, a missing object as None, and an integer column with gaps
    as floats: they read as pandas means them (a fact not given, a whole number)."""
    df = pd.DataFrame({
        "id": ["a", "b", "c"],
        "age": [70.0, 30.0, float("nan")],
        "egfr": [25.0, float("nan"), 50.0],
        "seizure_history": [True, None, False],
    })
    assert df["age"].dtype == "float64"
    engine = medscreen.Engine()
    expected = [
        engine.screen({"id": "a", "age": 70, "egfr": 25.0, "seizure_history": True}),
        engine.screen({"id": "b", "age": 30}),
        engine.screen({"id": "c", "egfr": 50.0, "seizure_history": False}),
    ]
    rows = rows_of_pandas(medscreen.pandas.screen(df))
    assert [r["status"] for r in rows] == ["flagged", "clear", "invalid"]
    for row, r in zip(rows, expected):
        assert row["status"] == r["status"]
        assert row["cautions"] == r.get("cautions")
        assert row["indeterminate"] == r.get("indeterminate")
    assert rows[2]["errors"][0]["pointer"] == "/age"


def test_polars_categoricals_and_null_columns():
    df = pl.DataFrame({
        "id": ["a", "b"],
        "age": [80, 30],
        "sex": pl.Series(["female", "male"], dtype=pl.Categorical),
        "pregnant": pl.Series([None, None], dtype=pl.Null),
    })
    engine = medscreen.Engine()
    rows = rows_of_polars(medscreen.polars.screen(df))
    for row, profile in zip(rows, [{"id": "a", "age": 80, "sex": "female"}, {"id": "b", "age": 30, "sex": "male"}]):
        expected = engine.screen(profile)
        assert (row["status"], row["cautions"], row["indeterminate"]) == (
            expected["status"], expected["cautions"], expected["indeterminate"])
