"""Flat tables (a column per fact) made from NDJSON records, and their NDJSON for the command line.

A data frame of patients has one type per column, so only records whose values fit one type per fact
can be a row: medications are kept as their strings (objects are left out of the list), and a record
whose value has another type than its column's (``"age": "seventy"``) or that has a member that is no
fact (``pregnent``) is left out. Values the schema
refuses but the type allows (``"age": 150``, ``"sex": "femal"``) stay: those rows are invalid.
"""

from __future__ import annotations

import json
import pathlib
from collections import Counter
from typing import Any

import pyarrow as pa

ARROW_TYPES = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}


def column_types(records: "list[dict[str, Any]]") -> "dict[str, type]":
    """Each member's most common Python type over ``records`` (int read as float where a member
    holds both)."""
    seen: "dict[str, Counter[type]]" = {}
    for r in records:
        for key, value in r.items():
            if key != "comedications" and value is not None:
                seen.setdefault(key, Counter())[type(value)] += 1
    types = {}
    for key, kinds in seen.items():
        if kinds[int] and kinds[float]:
            kinds[float] += kinds.pop(int)
        types[key] = kinds.most_common(1)[0][0]
    return types


def fits(record: Any, types: "dict[str, type]") -> bool:
    if not isinstance(record, dict):
        return False
    for key, value in record.items():
        if key == "comedications":
            if value is not None and not isinstance(value, list):
                return False
            continue
        if key not in types:
            return False
        if value is not None and not (
            type(value) is types[key] or (types[key] is float and type(value) is int)
        ):
            return False
    return True


def flat_records(lines: "list[bytes]", facts: "list[str]") -> "list[dict[str, Any]]":
    """The records of ``lines`` that can be rows of a flat table of ``facts``, as such rows (a
    record with a member that is no fact has no such row: the table would be refused)."""
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            continue
    types = column_types([r for r in parsed if isinstance(r, dict)])
    rows = []
    for r in parsed:
        if not fits(r, types) or not set(r) <= set(facts):
            continue
        row = dict(r)
        if isinstance(row.get("comedications"), list):
            row["comedications"] = [m for m in row["comedications"] if isinstance(m, str)]
        rows.append(row)
    return rows


def flat_table(rows: "list[dict[str, Any]]") -> pa.Table:
    types = column_types(rows)
    fields = [pa.field(key, ARROW_TYPES[kind]) for key, kind in sorted(types.items())]
    if any("comedications" in r for r in rows):
        fields.append(pa.field("comedications", pa.list_(pa.string())))
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def write_ndjson(table: pa.Table, path: pathlib.Path) -> pathlib.Path:
    """The table's rows as the command line reads them: a null cell is a member left out."""
    with path.open("w") as out:
        for row in table.to_pylist():
            out.write(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n")
    return path
