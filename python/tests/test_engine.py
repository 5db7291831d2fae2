"""The engine from Python gives the command line's results: screen, screen_many, screen_arrow."""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys
import threading
from typing import Any

import pyarrow as pa
import pytest

import medscreen
from conftest import BOTH, FIXTURES, cli_results, lines_of, rows_of_results, rows_of_table
from flat import flat_records, flat_table, write_ndjson

PACKS = [["baclofen"], BOTH]


def without_line(result: "dict[str, Any]") -> "dict[str, Any]":
    result = dict(result)
    del result["line"]
    return result


def next_line_messages_blanked(a: "dict[str, Any]", b: "dict[str, Any]") -> "tuple[dict[str, Any], dict[str, Any]]":
    """``a`` and ``b`` with their error messages blanked where the command line's (``b``) points to
    the next input line, which only a file has (`the JSON value is not complete at the end of line
    35, where the next line starts a new record`); pointer and code are still compared."""
    if b.get("errors") and any("next line" in e["message"] for e in b["errors"]):
        a = dict(a, errors=[dict(e, message=None) for e in a["errors"]])
        b = dict(b, errors=[dict(e, message=None) for e in b["errors"]])
    return a, b


def same_results(ours: "list[dict[str, Any]]", cli: "list[dict[str, Any]]") -> None:
    """Results (or table rows) equal one by one, but for the messages ``next_line_messages_blanked``
    blanks."""
    assert len(ours) == len(cli)
    for k, (a, b) in enumerate(zip(ours, cli)):
        a, b = next_line_messages_blanked(a, b)
        assert a == b, f"result {k}"


@pytest.mark.parametrize("packs", PACKS, ids=["baclofen", "both"])
def test_screen_gives_the_command_lines_results(cli, dataset, packs):
    engine = medscreen.Engine(packs=packs)
    lines = lines_of(dataset)
    expected = [without_line(r) for r in cli_results(cli, dataset, packs)]
    if dataset != FIXTURES:
        lines, expected = lines[:500], expected[:500]
    same_results([engine.screen(line) for line in lines], expected)
    same_results([engine.screen(line.decode()) for line in lines], expected)


@pytest.mark.parametrize("packs", PACKS, ids=["baclofen", "both"])
def test_screen_many_gives_the_command_lines_results_in_order(cli, dataset, packs):
    engine = medscreen.Engine(packs=packs, threads=2)
    expected = []
    for index, r in enumerate(cli_results(cli, dataset, packs)):
        r = without_line(r)
        expected.append({"index": index, **r})
    results = list(engine.screen_many(lines_of(dataset), chunk_size=777))
    same_results(results, expected)


def test_screen_many_reads_dicts_as_their_json(cli, generated):
    engine = medscreen.Engine()
    lines = lines_of(generated)
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            parsed.append(line)
    results = list(engine.screen_many(parsed))
    expected = [dict(without_line(r), index=k) for k, r in enumerate(cli_results(cli, generated))]
    # A dict has no duplicate keys and no spacing to keep, so compare what the record says.
    assert sum(isinstance(p, dict) for p in parsed) > 9_000
    same_results(results, expected)


@pytest.mark.parametrize("packs", PACKS, ids=["baclofen", "both"])
def test_screen_arrow_json_column_gives_the_command_lines_results(cli, dataset, packs):
    engine = medscreen.Engine(packs=packs, threads=2)
    lines = lines_of(dataset)
    table = pa.table({"profile": [line.decode() for line in lines]})
    ours = rows_of_table(engine.screen_arrow(table))
    expected = rows_of_results(cli_results(cli, dataset, packs), packs)
    assert len(ours) == len(lines) * len(packs)
    same_results(ours, expected)


@pytest.mark.parametrize("packs", PACKS, ids=["baclofen", "both"])
def test_screen_arrow_flat_columns_gives_the_command_lines_results(cli, generated, tmp_path, packs):
    engine = medscreen.Engine(packs=packs, threads=2)
    table = flat_table(flat_records(lines_of(generated), engine.facts))
    assert table.num_rows > 9_500
    assert table.schema.field("comedications").type == pa.list_(pa.string())
    reference = write_ndjson(table, tmp_path / "flat.ndjson")
    expected = rows_of_results(cli_results(cli, reference, packs), packs)
    ours = rows_of_table(engine.screen_arrow(table))
    assert sum(r["status"] == "invalid" for r in ours) > 50
    assert ours == expected


def test_binary_and_large_string_columns_and_batches_read_alike(generated):
    lines = lines_of(generated)[:3000]
    engine = medscreen.Engine()
    reference = engine.screen_arrow(pa.table({"profile": [l.decode() for l in lines]}))
    for column in [
        pa.array(lines, pa.binary()),
        pa.array([l.decode() for l in lines], pa.large_string()),
        pa.array([l.decode() for l in lines], pa.string_view()),
    ]:
        assert engine.screen_arrow(pa.table({"profile": column})).equals(reference)
    # Batches of any size: `index` counts over the whole stream.
    batches = pa.table({"profile": [l.decode() for l in lines]}).to_batches(max_chunksize=333)
    reader = pa.RecordBatchReader.from_batches(batches[0].schema, batches)
    assert engine.screen_arrow(reader).equals(reference)
    assert engine.screen_arrow(pa.table({"profile": pa.array([], pa.string())})).num_rows == 0


def test_medication_objects_as_structs():
    meds = pa.array(
        [[{"name": "oxycodone 5 mg", "rxnorm": None}, {"name": None, "rxnorm": "7052"}], None, []],
        pa.list_(pa.struct([("name", pa.string()), ("rxnorm", pa.string())])),
    )
    table = pa.table({"id": ["a", "b", "c"], "age": [70, 70, 70], "comedications": meds})
    engine = medscreen.Engine()
    rows = rows_of_table(engine.screen_arrow(table))
    expected = [
        engine.screen({"id": "a", "age": 70, "comedications": [{"name": "oxycodone 5 mg"}, {"rxnorm": "7052"}]}),
        engine.screen({"id": "b", "age": 70}),
        engine.screen({"id": "c", "age": 70, "comedications": []}),
    ]
    for row, r in zip(rows, expected):
        assert row["status"] == r["status"]
        assert [c["rule"] for c in row["cautions"]] == [c["rule"] for c in r["cautions"]]
        assert [(c["evidence"]) for c in row["cautions"]] == [c["evidence"] for c in r["cautions"]]
        assert row["indeterminate"] == r["indeterminate"]
    assert "BAC-DDI-OPIOID" in [c["rule"] for c in rows[0]["cautions"]]


def test_dictionary_columns_read_as_their_values():
    table = pa.table({
        "id": ["a", "b"],
        "age": pa.array([30, 80], pa.int8()),
        "sex": pa.array(["female", "male"]).dictionary_encode(),
        "egfr": pa.array([25.5, None], pa.float32()),
    })
    engine = medscreen.Engine()
    rows = rows_of_table(engine.screen_arrow(table))
    assert rows[0] == rows_of_table(engine.screen_arrow(pa.table({
        "profile": ['{"id":"a","age":30,"sex":"female","egfr":25.5}', '{"id":"b","age":80,"sex":"male"}']
    })))[0]


def test_nothing_is_dropped_bad_cells_are_invalid_rows():
    engine = medscreen.Engine(packs=BOTH)
    table = pa.table({"profile": ['{"id":"ok","age":40}', None, "{not json", '{"id":"x","age":500}']})
    rows = engine.screen_arrow(table).to_pylist()
    assert [(r["index"], r["pack"], r["status"]) for r in rows] == [
        (0, "baclofen", "clear"), (0, "tizanidine", "clear"),
        (1, "baclofen", "invalid"), (1, "tizanidine", "invalid"),
        (2, "baclofen", "invalid"), (2, "tizanidine", "invalid"),
        (3, "baclofen", "invalid"), (3, "tizanidine", "invalid"),
    ]
    assert rows[2]["errors"][0]["code"] == "invalid_json"
    assert rows[6]["id"] == "x"
    assert rows[6]["errors"] == [
        {"pointer": "/age", "code": "out_of_range", "message": "must be at most 130", "help": None}
    ]
    # A float that is not a number is no value the schema takes: the row is invalid, the field named.
    flat = pa.table({"id": ["n"], "age": [50], "egfr": [math.nan]})
    (row,) = engine.screen_arrow(flat).to_pylist()[:1]
    assert row["status"] == "invalid"
    assert [e["pointer"] for e in row["errors"]] == ["/egfr"]
    assert "nan" not in json.dumps(row).lower()


def test_screen_never_raises_for_a_bad_profile():
    engine = medscreen.Engine()
    assert engine.screen(b"\xff")["errors"][0]["code"] == "invalid_utf8"
    assert engine.screen("\ud800")["errors"][0]["code"] == "invalid_utf8"
    assert engine.screen(None)["status"] == "invalid"
    assert engine.screen([1, 2])["errors"][0]["code"] == "not_an_object"
    bad = engine.screen({"id": "p", "age": 40, "when": [object()]})
    assert (bad["status"], bad["id"]) == ("invalid", "p")
    assert bad["errors"] == [{"pointer": "/when/0", "code": "type_mismatch", "message": "a value of type `object` has no JSON form"}]
    deep: "list[object]" = []
    for _ in range(200):
        deep = [deep]
    assert engine.screen({"id": "q", "age": 1, "comedications": deep})["errors"][0]["code"] == "too_deep"
    assert engine.screen({1: 2})["errors"][0]["code"] == "invalid_json"


def test_columns_that_are_not_facts_are_refused_before_screening():
    engine = medscreen.Engine()
    with pytest.raises(ValueError, match=r"`pregnent` \(did you mean `pregnant`\?\)"):
        engine.screen_arrow(pa.table({"id": ["a"], "age": [3], "pregnent": [True]}))
    with pytest.raises(ValueError, match="no column `prof`"):
        engine.screen_arrow(pa.table({"profile": ["{}"]}), profile_col="prof")
    with pytest.raises(TypeError, match="not JSON text"):
        engine.screen_arrow(pa.table({"profile": [1]}))
    with pytest.raises(TypeError, match="no JSON form"):
        engine.screen_arrow(pa.table({"id": ["a"], "age": pa.array([1], pa.date32())}))
    with pytest.raises(TypeError, match="expected Arrow data"):
        engine.screen_arrow([{"id": "a"}])


def test_another_column_beside_the_json_column_is_not_read():
    engine = medscreen.Engine()
    table = pa.table({"line": [7], "profile": ['{"id":"a","age":40}']})
    assert engine.screen_arrow(table).column("status").to_pylist() == ["clear"]


def test_loading_errors_and_arguments():
    with pytest.raises(medscreen.LoadError, match="baclofn"):
        medscreen.Engine(packs=["baclofn"])
    with pytest.raises(medscreen.LoadError):
        medscreen.Engine(rules_dir="/nonexistent")
    with pytest.raises(ValueError, match="threads"):
        medscreen.Engine(threads=0)
    engine = medscreen.Engine(packs="tizanidine", threads=3)
    assert engine.packs == ["tizanidine"] and engine.threads == 3
    assert engine.rulesets[0].startswith("tizanidine@")
    assert {"id", "age", "comedications", "egfr"} <= set(engine.facts)
    assert medscreen.embedded_packs() == ["baclofen", "tizanidine"]


def test_a_rules_directory_screens_like_the_embedded_packs(generated):
    rules = pathlib.Path(__file__).resolve().parents[2] / "rules"
    table = pa.table({"profile": [l.decode() for l in lines_of(generated)[:1000]]})
    assert medscreen.Engine(rules_dir=rules).screen_arrow(table).equals(
        medscreen.Engine().screen_arrow(table)
    )


def test_output_schema_is_the_tables_schema():
    table = medscreen.Engine().screen_arrow(pa.table({"profile": ['{"id":"a","age":1}']}))
    assert table.schema == medscreen.output_schema()
    assert tuple(table.column_names) == medscreen.OUTPUT_COLUMNS


def test_engines_are_cached_per_arguments():
    assert medscreen.engine(["baclofen"]) is medscreen.engine(("baclofen",))
    assert medscreen.engine(["baclofen"]) is not medscreen.engine(BOTH)


def test_screening_releases_the_gil(generated):
    """With a switch interval of a second, the main thread runs Python while the worker is inside
    the native call only if that call lets go of the GIL; were it held, the main thread would not run
    until the call returned (and the worker had set `done`)."""
    engine = medscreen.Engine(threads=1)
    table = pa.table({"profile": [l.decode() for l in lines_of(generated)] * 3})
    started = threading.Event()
    done = threading.Event()

    def work():
        started.set()
        engine._native.screen_arrow(table, None, 0)
        done.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        worker = threading.Thread(target=work)
        worker.start()
        started.wait()
        ticks_while_screening = 0
        while not done.is_set():
            ticks_while_screening += 1
        worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert ticks_while_screening > 1000


def test_a_record_longer_than_the_command_lines_limit_is_invalid_not_read():
    engine = medscreen.Engine()
    padding = "x" * (1 << 20)
    long_record = '{"id":"long","age":40,"indication":"%s"}' % padding
    for result in [engine.screen(long_record),
                   engine.screen_arrow(pa.table({"profile": [long_record]})).to_pylist()[0]]:
        assert result["status"] == "invalid"
        assert [(e["pointer"], e["code"]) for e in result["errors"]] == [("", "too_large")]
        assert result["id"] is None


def test_an_engine_screens_in_a_forked_child():
    """A forked child has none of its parent's threads: the engine starts its own pool there."""
    code = """
import os, medscreen
engine = medscreen.engine()
assert engine.screen({"id": "a", "age": 40})["status"] == "clear"
pid = os.fork()
if pid == 0:
    status = medscreen.engine().screen({"id": "b", "age": 40, "seizure_history": True})["status"]
    os._exit(0 if status == "flagged" else 1)
_, code = os.waitpid(pid, 0)
raise SystemExit(os.waitstatus_to_exitcode(code))
"""
    run = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True)
    assert run.returncode == 0, run.stderr.decode()


def test_batches_that_do_not_match_their_schema_are_refused_not_read():
    """pyarrow's `from_batches` does not check a generator's batches against the declared schema;
    the engine checks every imported array before reading it."""
    schema = pa.schema([("profile", pa.string())])

    def batches(kind):
        yield pa.record_batch([pa.array(['{"id":"a","age":1}'] * 3, kind)], names=["profile"])

    for kind in [pa.large_string(), pa.int64()]:
        reader = pa.RecordBatchReader.from_batches(schema, batches(kind))
        with pytest.raises(ValueError, match="Arrow data"):
            medscreen.Engine().screen_arrow(reader)


def test_null_cells_of_every_kind_are_facts_not_given():
    engine = medscreen.Engine()
    meds = [[{"name": "oxycodone 5 mg", "rxnorm": None}]]
    table = pa.table({
        "id": ["a"], "age": [70],
        # Inferred as struct<name: string, rxnorm: null>: a field of the null type.
        "comedications": pa.array(meds),
        "pregnant": pa.array([None], pa.null()),
        "sex": pa.DictionaryArray.from_arrays(pa.array([0], pa.int8()), pa.array([None], pa.string())),
    })
    assert table.schema.field("comedications").type.value_type.field("rxnorm").type == pa.null()
    (row,) = rows_of_table(engine.screen_arrow(table))
    expected = engine.screen({"id": "a", "age": 70, "comedications": [{"name": "oxycodone 5 mg"}]})
    assert row["status"] == expected["status"] == "flagged"
    assert row["cautions"] == expected["cautions"]
    assert row["indeterminate"] == expected["indeterminate"]
    # A null struct in a list is a null item, which the schema refuses, with its place named.
    nulls = pa.table({"id": ["b"], "age": [70], "comedications": pa.array(
        [[None, {"name": "x"}]], pa.list_(pa.struct([("name", pa.string())])))})
    (bad,) = engine.screen_arrow(nulls).to_pylist()
    assert bad["status"] == "invalid"
    assert [e["pointer"] for e in bad["errors"]] == ["/comedications/0"]


def test_floats_are_read_as_written_and_not_a_number_is_invalid():
    engine = medscreen.Engine()
    table = pa.table({"id": ["a"], "age": [70], "egfr": pa.array([29.9], pa.float32())})
    (row,) = rows_of_table(engine.screen_arrow(table))
    evidence = [e for c in row["cautions"] for e in c["evidence"] if e["pointer"] == "/egfr"]
    assert evidence and all(e["value"] == 29.9 for e in evidence)
    # A float that is not finite is invalid for any fact, text included, with the field named.
    for column, value in [("egfr", math.nan), ("indication", math.inf), ("id", math.nan)]:
        columns = {"id": ["a"], "age": [40], column: [value]}
        (row,) = engine.screen_arrow(pa.table(columns)).to_pylist()
        assert row["status"] == "invalid", column
        assert [e["pointer"] for e in row["errors"]] == [f"/{column}"]
    nan_dict = engine.screen({"id": "d", "age": 40, "egfr": math.nan})
    assert nan_dict["status"] == "invalid" and nan_dict["id"] == "d"
    assert [e["pointer"] for e in nan_dict["errors"]] == ["/egfr"]


def test_a_json_column_given_twice_is_refused():
    table = pa.Table.from_arrays([pa.array(["{}"]), pa.array(["{}"])], names=["profile", "profile"])
    with pytest.raises(ValueError, match="appears twice"):
        medscreen.Engine().screen_arrow(table)


def test_a_pandas_frame_reads_alike_through_every_entry_point():
    import pandas as pd

    import medscreen.pandas

    df = pd.DataFrame({"id": ["a", "b", "c"], "age": [80, 30, 55], "egfr": [25.0, 90.0, None]})
    subset = df[df.age > 40]  # an index that is not 0..n
    engine = medscreen.Engine()
    direct = engine.screen_arrow(subset)
    assert direct.column("id").to_pylist() == ["a", "c"]
    assert direct.to_pylist() == pa.Table.from_pandas(
        medscreen.pandas.screen(subset), schema=direct.schema, preserve_index=False).to_pylist()
    with pytest.raises(TypeError, match="pandas DataFrame"):
        engine.screen_arrow(df["age"])
