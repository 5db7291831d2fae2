"""Screen a Spark DataFrame on the cluster: ``medscreen.spark.screen(df)``.

Built on ``DataFrame.mapInArrow`` (Spark 3.4 or later): each task screens its partition's Arrow
batches in its Python worker, with the engine compiled once per worker process. The package must be
installed on every worker.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, Union

import medscreen

if TYPE_CHECKING:
    import pyarrow
    import pyspark.sql


def output_type() -> "pyspark.sql.types.StructType":
    """The results' Spark schema: :func:`medscreen.output_schema` as Spark types."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(medscreen.output_schema())


def screen(
    df: "pyspark.sql.DataFrame",
    packs: Optional[Sequence[str]] = None,
    profile_col: Optional[str] = None,
    rules_dir: Union[str, "os.PathLike[str]", None] = None,
    threads: int = 1,
) -> "pyspark.sql.DataFrame":
    """Screen every row of ``df`` (a column of JSON text, or columns named by facts; see
    :meth:`medscreen.Engine.screen_arrow`), lazily, as Spark runs the plan.

    Returns a DataFrame with the columns of :func:`medscreen.output_schema`, one row per record and
    pack. Spark rows have no global order, so ``index`` is the row's position within its partition:
    join results to their input on ``id``. ``threads`` is per task (Spark already runs a task per
    core). A ``rules_dir`` is made absolute on the driver and must be readable at that path on every
    worker. The columns are checked here,
    on the driver, so that a column that is not a fact fails at once rather than in every task; with a
    JSON column, only that column is sent to the workers.
    """
    from pyspark.sql.pandas.types import to_arrow_schema

    if isinstance(packs, str):
        packs = [packs]
    packs = list(packs) if packs is not None else None
    # Resolved here, on the driver: a worker's working directory is not the driver's.
    rules = os.path.abspath(rules_dir) if rules_dir is not None else None
    medscreen.engine(packs, rules, threads).screen_arrow(
        to_arrow_schema(df.schema).empty_table(), profile_col=profile_col
    )
    json_column = profile_col or ("profile" if "profile" in df.columns else None)
    if json_column is not None:
        df = df.select(json_column)

    def screen_partition(
        batches: "Iterator[pyarrow.RecordBatch]",
    ) -> "Iterator[pyarrow.RecordBatch]":
        engine = medscreen.engine(packs, rules, threads)
        start = 0
        for batch in batches:
            table = engine.screen_arrow(batch, profile_col=profile_col, start_index=start)
            start += batch.num_rows
            yield from table.to_batches()

    return df.mapInArrow(screen_partition, output_type())
