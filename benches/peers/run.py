"""Times cxlake, plain DataFusion SQL, DuckDB and ClickHouse (chdb) on the same benchmark lake.

    python benches/peers/run.py LAKE [MORE_LAKES ...] [--runs 5] [--engines cxlake,duckdb,...]
                                [--queries id,id] [--threads N] [--out FILE.md]

LAKE is a directory written by `bench_lake` (its `_manifest.json` gives the scale). Every engine
runs in its own worker process, all alive at once; each query runs once per engine to warm the
cache and collect the result, the engines' results are checked to agree, then the engines take
turns, `--runs` rounds, so a noisy neighbour slows every engine alike. The first lake gets the
full table; with more lakes (other scales), the main queries also run on each of them and a
scaling table shows how cxlake's time grows with rows. `--threads N` caps every engine at N
threads (cxlake's target partitions, DuckDB's `threads`, ClickHouse's `max_threads`) for figures
against cores; pin the process to as many cores too (`taskset -c 0-N-1`). Peak memory is cxlake's resident-set high
water mark during the query, above what the worker held before it.

Run benches/peers/setup first: it builds everything and prints the python to run this with.
"""

import argparse
import datetime
import decimal
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from queries import ENGINES, queries  # noqa: E402

TABLE_GLOBS = {
    "surveys": "surveys/*/*.parquet",
    "tickets": "tickets/*/*.parquet",
    "customers": "customers/*.parquet",
    "events": "events/*/*.parquet",
}


# ---------------------------------------------------------------- worker side


class Engine:
    def __init__(self, name, lake, threads=None):
        self.name = name
        lake = os.path.abspath(lake)
        if name in ("cxlake", "datafusion"):
            import cxlake

            self.lake = cxlake.Lake(lake=lake, target_partitions=threads)
        elif name == "duckdb":
            import duckdb

            self.con = duckdb.connect()
            if threads:
                self.con.execute(f"SET threads = {threads}")
            for table, pattern in TABLE_GLOBS.items():
                self.con.execute(
                    f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{lake}/{pattern}', hive_partitioning = false)"
                )
        elif name == "clickhouse":
            from chdb import session

            self.session = session.Session()
            if threads:
                self.session.query(f"SET max_threads = {threads}")
            for table, pattern in TABLE_GLOBS.items():
                self.session.query(f"CREATE VIEW {table} AS SELECT * FROM file('{lake}/{pattern}', Parquet)")
        else:
            raise ValueError(f"unknown engine {name}")

    def run(self, sql):
        """Runs `sql` to completion and returns its rows as lists of plain values."""
        if self.name in ("cxlake", "datafusion"):
            return self.lake.sql(sql).to_arrow().to_pylist()
        if self.name == "duckdb":
            cur = self.con.execute(sql)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, row)) for row in cur.fetchall()]
        result = self.session.query(sql + " SETTINGS output_format_json_quote_64bit_integers = 0", "JSONEachRow")
        text = result.data() if hasattr(result, "data") else str(result)
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def status_bytes(field):
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def reset_peak():
    """Resets the kernel's resident-set high-water mark for this process (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def plain(value):
    if isinstance(value, dict):
        return [plain(v) for v in value.values()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


def worker(engine_name, lake, threads):
    engine = Engine(engine_name, lake, int(threads) if threads else None)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            measure = request.get("memory") and reset_peak()
            before = status_bytes("VmRSS")
            start = time.perf_counter()
            rows = engine.run(request["sql"])
            seconds = time.perf_counter() - start
            reply = {"seconds": seconds}
            if measure:
                reply["peak_bytes"] = max(0, status_bytes("VmHWM") - before)
            if request.get("rows"):
                reply["rows"] = [plain(list(r.values())) for r in rows]
        except Exception as e:  # the parent reports it against the query
            message = str(e)
            reply = {"error": f"{type(e).__name__}: {message[:400]}{'…' if len(message) > 400 else ''}"}
        print(json.dumps(reply), flush=True)


# ---------------------------------------------------------------- parent side


class Worker:
    def __init__(self, engine, lake, threads=None):
        self.engine = engine
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", engine, lake, str(threads or "")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self.proc.stdout.readline()
        if not ready:
            raise SystemExit(f"the {engine} worker did not start (is the package installed? run benches/peers/setup)")

    def ask(self, sql, rows=False, memory=False):
        self.proc.stdin.write(json.dumps({"sql": sql, "rows": rows, "memory": memory}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.engine} worker died")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def close_enough(a, b):
    """Results agree: same shape, integers equal, floats within 1e-9 relative (the engines sum in
    different orders)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close_enough(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, bool) or isinstance(b, bool):
        return int(a) == int(b)
    return a == b


def normalise(rows):
    """Rows sorted, so engines that return groups in another order still compare equal."""
    return sorted(rows, key=lambda r: json.dumps(r, default=str))


def manifest(lake):
    path = os.path.join(lake, "_manifest.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"{lake} has no _manifest.json: write the lake with bench_lake (see benches/README.md)")


def versions():
    out = {"python": platform.python_version()}
    for module in ("duckdb", "chdb", "pyarrow"):
        try:
            out[module] = __import__(module).__version__
        except Exception:
            pass
    try:
        from importlib.metadata import version

        out["cxlake"] = version("cxlake")
    except Exception:
        pass
    try:
        import chdb

        out["clickhouse"] = chdb.query("SELECT version()", "TSV").data().strip()
    except Exception:
        pass
    return out


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB memory, {platform.system()} {platform.release()}"


def fmt_seconds(s):
    return "—" if s is None else f"{s:.3f}"


def fmt_ratio(r):
    return "—" if r is None else f"{r:.2f}"


def bench_lake(lake, engines, chosen, runs, log, only_own=False, threads=None):
    """Times `chosen` on every engine over one lake; returns {query id: {engine: stats}}. With
    `only_own`, each query runs on one engine: cxlake, or DataFusion for the floors."""
    workers = {}
    try:
        for engine in engines:
            log(f"starting the {engine} worker")
            workers[engine] = Worker(engine, lake, threads)
        results = {}
        for q in chosen:
            stats = {}
            reference = None
            for engine in engines:
                sql = q["sql"].get(engine)
                if sql is None or (only_own and engine != ("cxlake" if "cxlake" in q["sql"] else "datafusion")):
                    continue
                reply = workers[engine].ask(sql, rows=True)
                if "error" in reply:
                    stats[engine] = {"error": reply["error"]}
                    log(f"  {q['id']} on {engine}: ERROR {reply['error']}")
                    continue
                rows = normalise(reply["rows"])
                if reference is None:
                    reference = (engine, rows)
                elif not close_enough(rows, reference[1]):
                    stats[engine] = {"error": f"disagrees with {reference[0]}: {rows[:5]} vs {reference[1][:5]}"}
                    log(f"  {q['id']}: {engine} DISAGREES with {reference[0]}:\n    {rows[:6]}\n    {reference[1][:6]}")
                    continue
                stats[engine] = {"times": [], "rows": len(rows)}
            timed = [e for e in engines if e in stats and "error" not in stats[e]]
            for round in range(runs):
                # A different engine goes first each round.
                order = timed[round % len(timed):] + timed[: round % len(timed)] if timed else []
                for engine in order:
                    reply = workers[engine].ask(q["sql"][engine], memory=(engine == "cxlake" and round == 0))
                    if "error" in reply:
                        stats[engine] = {"error": reply["error"]}
                        timed.remove(engine)
                        continue
                    stats[engine]["times"].append(reply["seconds"])
                    if "peak_bytes" in reply:
                        stats[engine]["peak_bytes"] = reply["peak_bytes"]
            for engine in timed:
                times = stats[engine]["times"]
                stats[engine]["median"] = statistics.median(times)
                stats[engine]["min"] = min(times)
            summary = ", ".join(
                f"{e} {s['median']:.3f}s" if "median" in s else f"{e} failed" for e, s in stats.items()
            )
            log(f"  {q['id']}: {summary}")
            results[q["id"]] = stats
        return results
    finally:
        for w in workers.values():
            w.close()


def main_table(chosen, results, engines):
    """Seconds (median, min) of every engine, and ratios peer ÷ cxlake and cxlake ÷ floor."""
    by_id = {q["id"]: q for q in chosen}
    peers = [e for e in engines if e != "cxlake"]
    head = ["query"] + [f"{e} median s" for e in engines] + [f"{e} ÷ cxlake" for e in peers if "cxlake" in engines]
    if "cxlake" in engines:
        head += ["cxlake ÷ floor", "cxlake min s", "cxlake peak MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for q in chosen:
        stats = results[q["id"]]
        median = lambda e: stats.get(e, {}).get("median")  # noqa: E731
        cells = [q["title"]]
        for e in engines:
            s = stats.get(e)
            cells.append("n/a" if s is None else ("failed" if "error" in s else fmt_seconds(s["median"])))
        if "cxlake" in engines:
            mine = median("cxlake")
            for e in peers:
                cells.append(fmt_ratio(median(e) / mine) if mine and median(e) else "—")
            floor = by_id.get(q["floor"]) if q["floor"] else None
            floor_time = results.get(floor["id"], {}).get("datafusion", {}).get("median") if floor else None
            cells.append(fmt_ratio(mine / floor_time) if mine and floor_time else "—")
            cells.append(fmt_seconds(stats.get("cxlake", {}).get("min")))
            peak = stats.get("cxlake", {}).get("peak_bytes")
            cells.append("—" if peak is None else f"{peak / 2**20:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scaling_table(chosen, per_lake, scales):
    """cxlake's median at each scale, and time per row relative to the largest scale."""
    head = ["query"] + [f"scale {s} s" for s in scales] + [f"s/row at {s} ÷ at {scales[-1]}" for s in scales[:-1]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for q in chosen:
        engine = "cxlake" if "cxlake" in q["sql"] else "datafusion"
        times = [per_lake[s].get(q["id"], {}).get(engine, {}).get("median") for s in scales]
        cells = [q["title"] + ("" if engine == "cxlake" else " (DataFusion)")] + [fmt_seconds(t) for t in times]
        for s, t in zip(scales[:-1], times[:-1]):
            top = times[-1]
            cells.append(fmt_ratio((t / s) / (top / scales[-1])) if t and top else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lakes", nargs="+", help="lakes written by bench_lake; the first gets the full table")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds per query (default 5)")
    parser.add_argument("--scaling-runs", type=int, default=3, help="timed rounds at the other scales (default 3)")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)}")
    parser.add_argument("--queries", help="comma-separated query ids (default: all)")
    parser.add_argument("--threads", type=int, help="threads per engine (default: each engine's own, all cores)")
    parser.add_argument("--out", help="also write the report (Markdown) to this file")
    args = parser.parse_args()
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads {args.threads}: use a positive number of threads")

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(unknown)}: choose from {', '.join(ENGINES)}")
    all_queries = queries()
    chosen = all_queries
    if args.queries:
        ids = [i.strip() for i in args.queries.split(",")]
        known = {q["id"] for q in all_queries}
        bad = [i for i in ids if i not in known]
        if bad:
            parser.error(f"unknown query id(s) {', '.join(bad)}: choose from {', '.join(sorted(known))}")
        # A query's floor comes along, for the cxlake ÷ floor column.
        wanted = set(ids) | {q["floor"] for q in all_queries if q["id"] in ids and q["floor"]}
        chosen = [q for q in all_queries if q["id"] in wanted]
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    def log(text):
        print(text, file=sys.stderr, flush=True)

    manifests = [(manifest(lake), lake) for lake in args.lakes]
    lakes = [(info["scale"], lake) for info, lake in manifests]
    info, lake = manifests[0]
    scale = info["scale"]
    log(f"lake {lake}: scale {scale}, rows {info['rows']}")
    started = time.time()
    results = bench_lake(lake, engines, chosen, args.runs, log, threads=args.threads)
    failures = [(q, e, s["error"]) for q, r in results.items() for e, s in r.items() if "error" in s]

    rows = ", ".join(f"{n:,} {t}" for t, n in info["rows"].items())
    report = [
        f"# Benchmark run {datetime.date.today().isoformat()}",
        "",
        f"- machine: {machine()}",
        *([f"- threads: {args.threads} per engine"] if args.threads else []),
        f"- versions: {', '.join(f'{k} {v}' for k, v in versions().items())}",
        f"- lake: scale {scale} ({rows}), written by bench_lake",
        f"- median of {args.runs} interleaved runs after one warm-up run per engine; seconds",
        "",
        main_table(chosen, results, engines),
    ]
    if len(lakes) > 1 and "cxlake" in engines:
        main_queries = [q for q in chosen if q["main"]]
        per_lake = {scale: results}
        for s, other in lakes[1:]:
            log(f"lake {other}: scale {s}")
            per_lake[s] = bench_lake(
                other, ["cxlake", "datafusion"], main_queries, args.scaling_runs, log, only_own=True,
                threads=args.threads,
            )
        scales = sorted(per_lake)
        report += [
            "",
            f"## Time against rows (cxlake; median of {args.scaling_runs} runs at the smaller scales)",
            "",
            "Time per row at each scale divided by time per row at the largest: 1.00 is linear.",
            "",
            scaling_table(main_queries, per_lake, scales),
        ]
    if failures:
        report += ["", "## Failures", ""] + [f"- {q} on {e}: {err}" for q, e, err in failures]
    report += ["", f"Total wall time {time.time() - started:.0f} s."]
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
