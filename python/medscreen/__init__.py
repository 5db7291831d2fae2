"""Safety screening of patient profiles against declarative rule packs.

medscreen validates each patient profile against its JSON Schema and screens it with one or more rule
packs (``baclofen``, ``tizanidine``), giving cautions with a severity, the evidence that made them
fire, and the rules it could not decide because a fact is missing. This package is the same engine as
the ``medscreen`` command line, compiled into the module, with Arrow in and Arrow out::

    import medscreen

    engine = medscreen.Engine(packs=["baclofen", "tizanidine"])
    engine.screen({"id": "p-1", "age": 70, "egfr": 25})       # one result, as a dict
    table = engine.screen_arrow(patients)                      # a pyarrow Table, one row per record and pack

``medscreen.spark.screen``, ``medscreen.polars.screen`` and ``medscreen.pandas.screen`` screen data
frames. Nothing is dropped: a record that fails validation is a result with ``status`` ``"invalid"``
and its ``errors`` (each naming the field, never the value).
"""

from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Sequence, Union

from medscreen import _native
from medscreen._native import LoadError, embedded_packs

if TYPE_CHECKING:
    import pyarrow

__all__ = [
    "Engine",
    "LoadError",
    "OUTPUT_COLUMNS",
    "embedded_packs",
    "engine",
    "output_schema",
]

__version__: str = _native.__version__

#: The columns of every result table, in order (see :func:`output_schema` for their types).
OUTPUT_COLUMNS = (
    "index",
    "id",
    "pack",
    "status",
    "max_severity",
    "cautions",
    "indeterminate",
    "errors",
    "ruleset",
)

Profile = Union[str, bytes, bytearray, "dict[str, Any]", None]


def output_schema() -> "pyarrow.Schema":
    """The Arrow schema of every result table, declared once (by the native module).

    ============== ============================================= ==================================
    column         type                                          meaning
    ============== ============================================= ==================================
    index          int64                                         the record's position in the input
    id             string                                        the record's ``id`` (null when an
                                                                 invalid record had none)
    pack           string                                        the pack this row is for
    status         string                                        ``clear``, ``flagged`` or
                                                                 ``invalid``
    max_severity   string                                        highest caution severity, or null
    cautions       list<struct<rule, severity, evidence>>        ``evidence`` is JSON text
    indeterminate  list<struct<rule, missing: list<string>>>     rules undecided for want of facts
    errors         list<struct<pointer, code, message, help>>    why a record is invalid
    ruleset        string                                        the pack's ``name@version#hash``
    ============== ============================================= ==================================

    A column is null where the command line's result has no such member (``cautions`` of an invalid
    record, ``errors`` of a screened one). Each record has one row per pack, an invalid one included.
    """
    import pyarrow as pa

    return pa.schema(_native.output_schema())


class Engine:
    """Rule packs compiled once, with a pool of worker threads.

    :param packs: the packs that screen, in order (``None``: the default pack, baclofen). Each
        record gets one result per pack.
    :param rules_dir: a rules directory, as the command line's ``--rules`` (``None``: the packs
        built into the module).
    :param threads: worker threads (``None``: one per CPU). Screening releases the GIL.
    :raises LoadError: a pack is unknown, or a rules directory does not load (every problem is
        named).
    """

    def __init__(
        self,
        packs: Optional[Sequence[str]] = None,
        rules_dir: Union[str, "os.PathLike[str]", None] = None,
        threads: Optional[int] = None,
    ) -> None:
        if isinstance(packs, str):
            packs = [packs]
        self._native = _native.Engine(
            list(packs) if packs is not None else None,
            os.fspath(rules_dir) if rules_dir is not None else None,
            threads,
        )

    @property
    def packs(self) -> "list[str]":
        """The packs that screen, in order."""
        return self._native.packs

    @property
    def rulesets(self) -> "list[str]":
        """Each pack's ``name@version#hash``, as results carry it."""
        return self._native.rulesets

    @property
    def facts(self) -> "list[str]":
        """The names a profile may hold: the columns a flat table may have."""
        return self._native.facts

    @property
    def threads(self) -> int:
        """The number of worker threads."""
        return self._native.threads

    def __repr__(self) -> str:
        return f"medscreen.Engine(packs={self.packs!r}, threads={self.threads})"

    def screen(self, profile: Profile) -> "dict[str, Any]":
        """Screen one profile (a dict, or its JSON text as str or bytes).

        A dict is written as JSON as ``json.dumps`` would, except that a float that is not finite
        (``nan``) makes the profile invalid with that member named, and a value with no JSON form
        (a ``datetime``) makes it invalid with its place named.

        Returns the command line's NDJSON result as a dict, without ``line``: ``id``, ``status``,
        ``max_severity``, ``cautions``, ``indeterminate``, ``ruleset``; with several packs, ``status``,
        ``max_severity`` and one entry per pack under ``screenings``; for an invalid profile,
        ``status`` ``"invalid"`` and ``errors``. It never raises for a bad profile.
        """
        (result,) = _results(self._native.screen_json([profile], 0))
        del result["index"]
        return result

    def screen_many(
        self, profiles: Iterable[Profile], chunk_size: int = 8192
    ) -> Iterator["dict[str, Any]"]:
        """Screen profiles lazily, ``chunk_size`` at a time in parallel; yields one result per
        profile, in order, each with ``index``, its position in ``profiles`` (from 0)."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        chunk: "list[Profile]" = []
        start = 0
        for profile in profiles:
            chunk.append(profile)
            if len(chunk) == chunk_size:
                yield from _results(self._native.screen_json(chunk, start))
                start += len(chunk)
                chunk = []
        if chunk:
            yield from _results(self._native.screen_json(chunk, start))

    def screen_arrow(
        self, data: Any, profile_col: Optional[str] = None, start_index: int = 0
    ) -> "pyarrow.Table":
        """Screen Arrow data: anything with the Arrow PyCapsule stream interface (a pyarrow Table,
        RecordBatch or RecordBatchReader, a polars DataFrame) or a pandas DataFrame (its index is
        not read).

        Profiles are read from one column of JSON text (``profile_col``, or a column named
        ``profile``; other columns are then ignored), or else from columns named by facts (``id``,
        ``age``, ``sex``, ``egfr``, ``comedications`` as a list of strings...): a null cell is a
        fact not given. A column that is not a fact is refused with :class:`ValueError` before
        anything is screened.

        Returns a pyarrow Table of :func:`output_schema`: one row per record and pack, ``index``
        counting from ``start_index``.
        """
        import pyarrow as pa

        if start_index < 0:
            raise ValueError("start_index must be at least 0")
        stream = self._native.screen_arrow(_arrow(data), profile_col, start_index)
        return pa.RecordBatchReader.from_stream(stream).read_all()


def _results(lines: "list[bytes]") -> Iterator["dict[str, Any]"]:
    for line in lines:
        result = json.loads(line)
        del result["line"]
        yield result


def _arrow(data: Any) -> Any:
    """``data`` as pyarrow data, which the native module imports through ``__arrow_c_stream__``."""
    import pyarrow as pa

    if isinstance(data, (pa.Table, pa.RecordBatch, pa.RecordBatchReader)):
        return data
    if type(data).__module__.split(".")[0] == "pandas":
        if type(data).__name__ != "DataFrame":
            raise TypeError(f"expected a pandas DataFrame, got {type(data).__name__}")
        return pa.Table.from_pandas(data, preserve_index=False)
    if hasattr(data, "__arrow_c_stream__"):
        # Through pyarrow, which reads every producer's layout (polars exports a Null column with a
        # buffer that the Arrow C data interface does not have).
        return pa.RecordBatchReader.from_stream(data)
    if hasattr(data, "__arrow_c_array__"):
        return pa.record_batch(data)
    raise TypeError(
        "expected Arrow data (an object with __arrow_c_stream__, such as a pyarrow Table or a "
        f"polars DataFrame) or a pandas DataFrame, got {type(data).__name__}"
    )


@functools.lru_cache(maxsize=16)
def _cached(
    packs: "Optional[tuple[str, ...]]", rules_dir: Optional[str], threads: Optional[int]
) -> Engine:
    return Engine(packs, rules_dir, threads)


def engine(
    packs: Optional[Sequence[str]] = None,
    rules_dir: Union[str, "os.PathLike[str]", None] = None,
    threads: Optional[int] = None,
) -> Engine:
    """The :class:`Engine` for these arguments, compiled once per process and then reused (Spark
    tasks and repeated data-frame calls do not recompile it)."""
    if isinstance(packs, str):
        packs = [packs]
    return _cached(
        tuple(packs) if packs is not None else None,
        os.path.abspath(rules_dir) if rules_dir is not None else None,
        threads,
    )
