"""screen_arrow's records per second against the command line's, on the same data, in one run.

Not a test: a measurement (BENCHMARKS.md, "Python and Spark"). Rounds alternate between the two so
that a noisy machine weighs on both alike; each figure is a median, and the ratio is the median of the
rounds' ratios.

    python python/benches/throughput.py [--records 200000] [--rounds 5] [--threads 2] [--spark]

The command line is the release binary (``cargo build --release``), or ``MEDSCREEN_CLI``. Each round:

- ``cli``: ``medscreen screen FILE --threads T -o OUT``, the whole process (reading NDJSON, writing
  NDJSON);
- ``arrow``: ``Engine(threads=T).screen_arrow(table)`` on a table of one JSON column already in
  memory, giving a pyarrow Table;
- ``arrow+read``: the same, with reading the file into that table counted;
- ``flat``: ``screen_arrow`` on the same records as columns named by facts (as many as fit a flat table);
- with ``--spark``, after the rounds: ``medscreen.spark.screen`` in ``local[T]``, the file read by
  Spark and the results written to the ``noop`` sink, ``rounds`` times after one warm-up run (Spark's
  start-up and first run not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import pyarrow as pa

import medscreen

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python" / "tests"))
from flat import flat_records, flat_table  # noqa: E402


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def read_table(path: pathlib.Path) -> pa.Table:
    lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
    return pa.table({"profile": pa.array(lines, pa.binary())})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--spark", action="store_true")
    args = parser.parse_args()
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    cli = os.environ.get("MEDSCREEN_CLI", str(target / "release" / "medscreen"))
    work = pathlib.Path(tempfile.mkdtemp(prefix="medscreen-bench-"))
    data = work / "profiles.ndjson"
    subprocess.run([cli, "generate", "--count", str(args.records), "--seed", str(args.seed),
                    "--invalid-rate", "0.02", "-o", str(data)], check=True)
    size_mb = data.stat().st_size / 1e6
    engine = medscreen.Engine(threads=args.threads)
    table = read_table(data)
    flat = flat_table(flat_records([l for l in data.read_bytes().split(b"\n") if l.strip()], engine.facts))
    print(f"{args.records} records, {size_mb:.1f} MB; flat table {flat.num_rows} rows; "
          f"{args.threads} threads; {os.cpu_count()} CPUs", flush=True)

    def run_cli() -> None:
        run = subprocess.run([cli, "screen", str(data), "--threads", str(args.threads),
                              "-o", str(work / "out.ndjson")], stderr=subprocess.DEVNULL)
        # 1: some records are invalid, as the data holds 2% that are.
        assert run.returncode == 1, run.returncode

    times: "dict[str, list[float]]" = {"cli": [], "arrow": [], "arrow+read": [], "flat": []}
    for _ in range(args.rounds):
        times["cli"].append(timed(run_cli))
        times["arrow"].append(timed(lambda: engine.screen_arrow(table)))
        times["arrow+read"].append(timed(lambda: engine.screen_arrow(read_table(data))))
        times["flat"].append(timed(lambda: engine.screen_arrow(flat)))
    rows = {"cli": args.records, "arrow": args.records, "arrow+read": args.records, "flat": flat.num_rows}
    report = {}
    for name, ts in times.items():
        rate = rows[name] / statistics.median(ts)
        ratios = [(rows[name] / t) / (args.records / c) for t, c in zip(ts, times["cli"])]
        report[name] = {"median_s": statistics.median(ts), "records_per_s": rate,
                        "vs_cli": statistics.median(ratios), "runs_s": ts}
        print(f"{name:>11}: {rate:>10,.0f} records/s  median {statistics.median(ts):.3f} s  "
              f"x{statistics.median(ratios):.2f} the command line (median of round ratios)", flush=True)
    if args.spark:
        report["spark"] = spark_rate(data, args)
    print(json.dumps(report))


def spark_rate(data: pathlib.Path, args: argparse.Namespace) -> "dict[str, float]":
    from pyspark.sql import SparkSession

    import medscreen.spark

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (SparkSession.builder.master(f"local[{args.threads}]").appName("medscreen-bench")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.text(str(data)).withColumnRenamed("value", "profile")
    def run() -> None:
        medscreen.spark.screen(df).write.format("noop").mode("overwrite").save()

    run()  # warm-up, not counted: the JVM's first run and the Python workers' start
    ts = [timed(run) for _ in range(args.rounds)]
    spark.stop()
    rate = args.records / statistics.median(ts)
    print(f"      spark: {rate:>10,.0f} records/s  median {statistics.median(ts):.3f} s  "
          f"(local[{args.threads}], {len(ts)} runs)", flush=True)
    return {"median_s": statistics.median(ts), "records_per_s": rate, "runs_s": ts}


if __name__ == "__main__":
    main()
