"""Screen a polars DataFrame: ``medscreen.polars.screen(df)``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Sequence, Union

import medscreen

if TYPE_CHECKING:
    import polars


def screen(
    df: "polars.DataFrame",
    packs: Optional[Sequence[str]] = None,
    profile_col: Optional[str] = None,
    rules_dir: Union[str, "os.PathLike[str]", None] = None,
    threads: Optional[int] = None,
) -> "polars.DataFrame":
    """Screen every row of ``df`` (a column of JSON text, or columns named by facts; see
    :meth:`medscreen.Engine.screen_arrow`) and return the results as a polars DataFrame with the
    columns of :func:`medscreen.output_schema`, one row per record and pack. The engine is compiled
    once per process."""
    import polars as pl

    engine = medscreen.engine(packs, rules_dir, threads)
    result = pl.from_arrow(engine.screen_arrow(df, profile_col=profile_col))
    assert isinstance(result, pl.DataFrame)
    return result
