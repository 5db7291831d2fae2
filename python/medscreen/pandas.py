"""Screen a pandas DataFrame: ``medscreen.pandas.screen(df)``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Sequence, Union

import medscreen

if TYPE_CHECKING:
    import pandas


def screen(
    df: "pandas.DataFrame",
    packs: Optional[Sequence[str]] = None,
    profile_col: Optional[str] = None,
    rules_dir: Union[str, "os.PathLike[str]", None] = None,
    threads: Optional[int] = None,
) -> "pandas.DataFrame":
    """Screen every row of ``df`` (a column of JSON text, or columns named by facts; see
    :meth:`medscreen.Engine.screen_arrow`) and return the results as a pandas DataFrame with the
    columns of :func:`medscreen.output_schema`, one row per record and pack (as pyarrow converts them:
    a list column holds numpy arrays, a struct a dict). The frame goes through pyarrow: its index is not read, and a float
    ``NaN`` is a missing value, as pandas means it. The engine is compiled once per process."""
    import pyarrow as pa

    engine = medscreen.engine(packs, rules_dir, threads)
    table = pa.Table.from_pandas(df, preserve_index=False)
    return engine.screen_arrow(table, profile_col=profile_col).to_pandas()
