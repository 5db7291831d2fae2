"""Shared data for the tests: the command line's results are the reference.

The command line (``medscreen``) is built from this repository with cargo (a no-op when ``cargo test``
built it already), or taken from ``MEDSCREEN_CLI``. Nothing here is skipped when missing: a test
without its data fails.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from typing import Any, Optional

import pyarrow as pa
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "patients.ndjson"
GENERATED_COUNT = 10_000
BOTH = ["baclofen", "tizanidine"]


@pytest.fixture(scope="session")
def cli() -> str:
    given = os.environ.get("MEDSCREEN_CLI")
    if given:
        return given
    subprocess.run(["cargo", "build", "--quiet", "--bin", "medscreen"], cwd=ROOT, check=True)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    path = target / "debug" / "medscreen"
    assert path.is_file(), f"cargo built no {path}"
    return str(path)


@pytest.fixture(scope="session")
def generated(cli: str, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """10,000 generated profiles, 2% of them deliberately invalid."""
    path = tmp_path_factory.mktemp("data") / "generated.ndjson"
    subprocess.run(
        [cli, "generate", "--count", str(GENERATED_COUNT), "--seed", "11",
         "--invalid-rate", "0.02", "-o", str(path)],
        check=True,
    )
    assert len(lines_of(path)) == GENERATED_COUNT
    return path


@pytest.fixture(scope="session", params=["fixtures", "generated"])
def dataset(request: pytest.FixtureRequest) -> pathlib.Path:
    if request.param == "fixtures":
        return FIXTURES
    return request.getfixturevalue("generated")


def lines_of(path: pathlib.Path) -> "list[bytes]":
    """The records of an NDJSON file, as the command line reads them (blank lines are not records)."""
    return [line for line in path.read_bytes().split(b"\n") if line.strip()]


def cli_results(cli: str, path: pathlib.Path, packs: Optional["list[str]"] = None) -> "list[dict[str, Any]]":
    """The command line's results for ``path``, one dict per record."""
    args = [cli, "screen", str(path)]
    for pack in packs or []:
        args += ["--pack", pack]
    run = subprocess.run(args, capture_output=True, check=False)
    assert run.returncode in (0, 1), run.stderr.decode()
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(results) == len(lines_of(path))
    return results


def rows_of_results(results: "list[dict[str, Any]]", packs: "list[str]") -> "list[dict[str, Any]]":
    """The command line's results as the rows of a result table: one per record and pack."""
    rows = []
    for index, r in enumerate(results):
        if r["status"] == "invalid":
            errors = [
                {"pointer": e["pointer"], "code": e["code"], "message": e["message"],
                 "help": e.get("help")}
                for e in r["errors"]
            ]
            for pack in packs:
                rows.append({
                    "index": index, "id": r["id"], "pack": pack, "status": "invalid",
                    "max_severity": None, "cautions": None, "indeterminate": None,
                    "errors": errors, "ruleset": None,
                })
            continue
        screenings = r["screenings"] if "screenings" in r else [dict(r, pack=packs[0])]
        assert [s["pack"] for s in screenings] == packs
        for s in screenings:
            rows.append({
                "index": index, "id": r["id"], "pack": s["pack"], "status": s["status"],
                "max_severity": s["max_severity"],
                "cautions": [
                    {"rule": c["rule"], "severity": c["severity"], "evidence": c["evidence"]}
                    for c in s["cautions"]
                ],
                "indeterminate": s["indeterminate"], "errors": None, "ruleset": s["ruleset"],
            })
    return rows


def rows_of_table(table: pa.Table) -> "list[dict[str, Any]]":
    """A result table's rows, with each caution's evidence read from its JSON text."""
    return [with_evidence_read(row) for row in table.to_pylist()]


def with_evidence_read(row: "dict[str, Any]") -> "dict[str, Any]":
    if row["cautions"] is not None:
        row["cautions"] = [dict(c, evidence=json.loads(c["evidence"])) for c in row["cautions"]]
    return row


def position_free(rows: "list[dict[str, Any]]") -> "list[str]":
    """Rows without ``index``, as sorted canonical text: for results whose order is not the input's.

    A record that is not one JSON value has its parse error's message blanked on both sides: the
    command line may say where the next line starts a record (`the JSON value is not complete at the
    end of line 35...`), which only a file has, and without the order the two cannot be paired.
    Pointer and code are still compared."""

    def canonical(row: "dict[str, Any]") -> str:
        row = {k: v for k, v in row.items() if k != "index"}
        if row["errors"] and [e["code"] for e in row["errors"]] == ["invalid_json"]:
            row["errors"] = [dict(e, message=None) for e in row["errors"]]
        return json.dumps(row, sort_keys=True)

    return sorted(canonical(row) for row in rows)
