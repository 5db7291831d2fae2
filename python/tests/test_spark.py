"""A local Spark session (``local[2]``) screens through ``medscreen.spark.screen`` with the command
line's results, invalid rows included."""

from __future__ import annotations

import json
import os
import sys

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

import medscreen
import medscreen.spark
from conftest import BOTH, cli_results, lines_of, position_free, rows_of_results, rows_of_table
from flat import flat_records, flat_table, write_ndjson


@pytest.fixture(scope="module")
def spark():
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("medscreen-tests")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


def spark_rows(df) -> "list[dict]":
    rows = [row.asDict(recursive=True) for row in df.collect()]
    for row in rows:
        if row["cautions"] is not None:
            row["cautions"] = [dict(c, evidence=json.loads(c["evidence"])) for c in row["cautions"]]
    return rows


@pytest.mark.parametrize("packs", [["baclofen"], BOTH], ids=["baclofen", "both"])
def test_spark_json_column_gives_the_command_lines_results(spark, cli, generated, packs):
    lines = lines_of(generated)
    df = spark.createDataFrame([(line.decode(),) for line in lines], "profile string").repartition(4)
    result = medscreen.spark.screen(df, packs=packs)
    assert result.schema == medscreen.spark.output_type()
    rows = spark_rows(result)
    expected = rows_of_results(cli_results(cli, generated, packs), packs)
    assert len(rows) == len(lines) * len(packs)
    assert sum(r["status"] == "invalid" for r in rows) >= 100 * len(packs)
    # Spark rows have no global order: compare every row but `index`, as a multiset.
    assert position_free(rows) == position_free(expected)


def test_spark_flat_columns_give_the_command_lines_results(spark, cli, generated, tmp_path):
    table = flat_table(flat_records(lines_of(generated), medscreen.Engine().facts))
    expected = rows_of_results(cli_results(cli, write_ndjson(table, tmp_path / "flat.ndjson")), ["baclofen"])
    df = spark.createDataFrame(table.to_pandas()).repartition(3)
    rows = spark_rows(medscreen.spark.screen(df))
    assert len(rows) == table.num_rows
    assert position_free(rows) == position_free(expected)


def test_spark_index_counts_rows_within_each_partition(spark):
    """Over several Arrow batches in one partition (seven rows a batch here)."""
    df = spark.createDataFrame([('{"id":"p%d","age":40}' % k,) for k in range(100)], "profile string")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "7")
    try:
        rows = spark_rows(medscreen.spark.screen(df.coalesce(1)))
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert [r["index"] for r in rows] == list(range(100))
    assert [r["id"] for r in rows] == ["p%d" % k for k in range(100)]


def test_spark_sends_only_the_json_column(spark):
    df = spark.createDataFrame([(7, '{"id":"a","age":40}')], "line int, profile string")
    (row,) = spark_rows(medscreen.spark.screen(df))
    assert (row["id"], row["status"]) == ("a", "clear")


def test_spark_refuses_a_column_that_is_not_a_fact_on_the_driver(spark):
    df = spark.createDataFrame([("a", 40, True)], "id string, age int, pregnent boolean")
    with pytest.raises(ValueError, match="did you mean `pregnant`"):
        medscreen.spark.screen(df)
