"""Tests of the cxlake Python package: known answers over the sample lake and hand-built frames,
the Arrow PyCapsule stream, streaming memory, errors and Ctrl-C cancellation."""

import _thread
import datetime as dt
import os
import signal
import threading
import time

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import cxlake
from ports import free_port, wait_for_port


@pytest.fixture(scope="module")
def lake():
    return cxlake.Lake()


def approx(x):
    return pytest.approx(x, rel=1e-9, abs=1e-9)


def by_key(table, key, value):
    d = table.to_pydict()
    return dict(zip(d[key], d[value]))


# ---- the sample lake, metric by metric, against independent computations ----------------------


def test_sample_lake_tables(lake):
    tables = lake.tables()
    for name in ["clickstream", "customers", "subscriptions", "surveys", "tickets"]:
        assert name in tables


def test_nps_by_channel_matches_pandas(lake):
    got = lake.sql("SELECT channel, nps(score) AS nps FROM surveys GROUP BY channel").to_arrow()
    raw = lake.sql("SELECT channel, score FROM surveys").to_pandas().dropna(subset=["score"])
    expected = {}
    for channel, g in raw.groupby("channel"):
        n = len(g)
        prom = (g["score"] >= 9).sum()
        det = (g["score"] <= 6).sum()
        expected[channel] = 100.0 * (prom - det) / n
    got = by_key(got, "channel", "nps")
    assert set(got) == set(expected) == {"email", "web", "app", "phone", "chat"}
    for channel, value in expected.items():
        assert got[channel] == approx(value)


def test_csat_ces_match_pyarrow(lake):
    got = lake.sql("SELECT csat(satisfaction) AS csat, ces(effort) AS ces FROM surveys").to_arrow().to_pylist()[0]
    raw = lake.sql("SELECT satisfaction, effort FROM surveys").to_arrow()
    sat = [v for v in raw.column("satisfaction").to_pylist() if v is not None]
    eff = [v for v in raw.column("effort").to_pylist() if v is not None]
    assert got["csat"] == approx(100.0 * sum(1 for v in sat if v >= 4) / len(sat))
    assert got["ces"] == approx(sum(eff) / len(eff))


def test_conversion_rate_by_device(lake):
    got = by_key(
        lake.sql("SELECT device, conversion_rate(converted) AS cr FROM clickstream GROUP BY device").to_arrow(),
        "device",
        "cr",
    )
    raw = lake.sql("SELECT device, converted FROM clickstream").to_pandas()
    expected = (raw.groupby("device")["converted"].mean() * 100.0).to_dict()
    assert set(got) == set(expected) == {"mobile", "desktop", "tablet"}
    for device, value in expected.items():
        assert got[device] == approx(value)


def test_first_response_time_by_channel(lake):
    got = by_key(
        lake.sql(
            "SELECT channel, first_response_time(created_at, first_response_at) AS frt FROM tickets GROUP BY channel"
        ).to_arrow(),
        "channel",
        "frt",
    )
    raw = lake.sql("SELECT channel, created_at, first_response_at FROM tickets").to_pandas()
    raw = raw.dropna(subset=["first_response_at"])
    raw["secs"] = (raw["first_response_at"] - raw["created_at"]).dt.total_seconds()
    expected = raw.groupby("channel")["secs"].mean().to_dict()
    assert set(got) == set(expected)
    for channel, value in expected.items():
        assert got[channel] == pytest.approx(value, rel=1e-6)


# ---- hand-built in-memory frames with hand-computed answers ------------------------------------


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


def test_churn_and_retention_on_a_pyarrow_table():
    lake = cxlake.Lake(tables={})
    assert lake.tables() == []
    customers = pa.table(
        {
            "id": [1, 2, 3, 4, 5],
            "started_at": pa.array(
                [utc(2024, 6, 1), utc(2024, 12, 1), utc(2024, 1, 1), utc(2025, 1, 10), utc(2024, 11, 1)],
                pa.timestamp("ms", "UTC"),
            ),
            "ended_at": pa.array(
                [None, utc(2025, 1, 15), utc(2024, 12, 31), None, utc(2025, 3, 1)], pa.timestamp("ms", "UTC")
            ),
        }
    )
    lake.register("subs", customers)
    assert lake.tables() == ["subs"]
    row = (
        lake.sql(
            "SELECT churn_rate(started_at, ended_at, TIMESTAMP '2025-01-01T00:00:00Z', TIMESTAMP '2025-02-01T00:00:00Z') AS churn, "
            "retention_rate(started_at, ended_at, TIMESTAMP '2025-01-01T00:00:00Z', TIMESTAMP '2025-02-01T00:00:00Z') AS crr "
            "FROM subs"
        )
        .to_arrow()
        .to_pylist()[0]
    )
    # At the start: 1, 2, 5 (S = 3); 2 leaves (L = 1); 4 is new (N = 1); at the end: 1, 4, 5 (E = 3).
    assert row["churn"] == approx(100.0 * 1 / 3)
    assert row["crr"] == approx(100.0 * (3 - 1) / 3)


def test_registered_polars_frame_with_nps_and_params():
    lake = cxlake.Lake(tables={})
    df = pl.DataFrame({"team": ["a", "a", "a", "a", "b", "b"], "score": [10, 9, 7, 3, 6, None]})
    lake.register("answers", df)
    got = lake.sql("SELECT team, nps(score) AS nps FROM answers GROUP BY team ORDER BY team").to_polars()
    assert isinstance(got, pl.DataFrame)
    assert got["team"].to_list() == ["a", "b"]
    # a: 2 promoters, 1 passive, 1 detractor: 100 * (2 - 1) / 4 = 25; b: 1 detractor of 1: -100.
    assert got["nps"].to_list() == [approx(25.0), approx(-100.0)]
    one = lake.sql("SELECT nps(score) AS nps FROM answers WHERE team = $team", {"team": "a"}).to_arrow()
    assert one.column("nps").to_pylist() == [approx(25.0)]


def test_registered_pandas_frame_with_rates():
    lake = cxlake.Lake(tables={})
    df = pd.DataFrame({"satisfaction": [5, 4, 3, 2], "responded": [True, False, True, True]})
    lake.register("s", df)
    row = lake.sql("SELECT csat(satisfaction) AS c, feedback_response_rate(responded) AS r FROM s").to_arrow()
    assert row.to_pylist() == [{"c": approx(50.0), "r": approx(75.0)}]


def test_register_replaces_and_accepts_locations(tmp_path):
    import pyarrow.parquet as pq

    lake = cxlake.Lake(tables={})
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    lake.register("t", str(path))
    assert lake.sql("SELECT sum(x) AS s FROM t").to_arrow().to_pylist() == [{"s": 6}]
    lake.register("t", pa.table({"x": [10]}))
    assert lake.sql("SELECT sum(x) AS s FROM t").to_arrow().to_pylist() == [{"s": 10}]
    lake2 = cxlake.Lake(tables={"t": path})
    assert lake2.tables() == ["t"]
    lake3 = cxlake.Lake(lake=str(tmp_path))
    assert lake3.tables() == ["t"]


# ---- the Arrow PyCapsule interface and the other outputs ---------------------------------------


def test_pycapsule_consumers(lake):
    result = lake.sql("SELECT channel, nps(score) AS nps FROM surveys GROUP BY channel ORDER BY channel")
    t = pa.table(result)
    p = pl.DataFrame(result)
    assert t.num_rows == 5 and p.height == 5
    assert t.column("channel").to_pylist() == p["channel"].to_list()
    assert t.column("nps").to_pylist() == p["nps"].to_list()
    # A Result runs its query again on each consumption.
    assert result.to_arrow().equals(t)
    assert sum(b.num_rows for b in result.to_batches()) == 5
    assert result.to_pandas().shape == (5, 2)
    assert result.schema.names == ["channel", "nps"]


def test_repr_and_html(lake):
    result = lake.sql("SELECT value, value * 2 AS twice FROM range(100)")
    text = repr(result)
    assert "value" in text and "twice" in text and "| 19" in text
    assert "first 20 rows shown" in text
    html = result._repr_html_()
    assert html.startswith("<table") and "<th>twice</th>" in html and "<td>38</td>" in html


def test_functions(lake):
    functions = {f["name"]: f for f in lake.functions()}
    assert {"nps", "csat", "churn_rate", "conversion_rate"} <= set(functions)
    assert functions["nps"]["kind"] == "aggregate"
    assert "Net Promoter Score" in functions["nps"]["summary"]
    assert "nps(score)" in functions["nps"]["doc"]


# ---- errors ------------------------------------------------------------------------------------


def test_invalid_input_raises_cxlake_error(lake):
    query = "SELECT nps(x) FROM (VALUES (9), (11)) AS t(x)"
    with pytest.raises(cxlake.CxlakeError) as err:
        lake.sql(query).to_arrow()
    message = str(err.value)
    assert "nps" in message and "11" in message and "cxlake.invalid_input" in message
    # The C stream starts the query (and computes its first batch) when exported: same error.
    with pytest.raises(cxlake.CxlakeError):
        pa.table(lake.sql(query))
    assert issubclass(cxlake.CxlakeError, Exception)


def test_planning_errors_raise_at_sql(lake):
    with pytest.raises(cxlake.CxlakeError, match="no_such_table"):
        lake.sql("SELECT * FROM no_such_table")
    with pytest.raises(cxlake.CxlakeError):
        lake.sql("SELEC 1")


def test_skip_setting():
    lake = cxlake.Lake(tables={})
    lake.sql("SET cxlake.invalid_input = 'skip'")
    got = lake.sql("SELECT nps(x) AS nps FROM (VALUES (9), (11)) AS t(x)").to_arrow()
    assert got.to_pylist() == [{"nps": approx(100.0)}]


# ---- streaming and cancellation ----------------------------------------------------------------


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_large_result_streams_batch_by_batch():
    lake = cxlake.Lake(tables={}, target_partitions=2)
    n = 20_000_000
    result = lake.sql(f"SELECT value, value % 11 AS s FROM range({n})")
    full_size = n * 16  # two Int64 columns: 320 MB
    baseline = rss_bytes()
    reader = pa.RecordBatchReader.from_stream(result)
    rows = 0
    total = 0
    batches = 0
    peak = 0
    for batch in reader:
        rows += batch.num_rows
        total += pa.compute.sum(batch.column("s")).as_py()
        batches += 1
        peak = max(peak, rss_bytes() - baseline, pa.total_allocated_bytes())
        del batch
    assert rows == n
    assert total == sum(range(11)) * (n // 11) + sum(range(n % 11))
    assert batches > 100
    # The result is never held whole: memory grows by far less than its 320 MB.
    assert peak < full_size / 4, f"peak growth {peak} bytes for a {full_size}-byte result"


def test_keyboard_interrupt_cancels_a_query():
    lake = cxlake.Lake(tables={})
    # A Python started with SIGINT ignored (a background job of a non-interactive shell, nohup)
    # installs no handler for it, and interrupt_main() then does nothing: Python's own handler,
    # as an interactive session has it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            lake.sql("SELECT sum(value) FROM range(1, 100000000000)").to_arrow()
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - start < 5
    # The lake still works afterwards.
    assert lake.sql("SELECT 1 + 1 AS two").to_arrow().to_pylist() == [{"two": 2}]


# ---- the README's Python example runs as written ----------------------------------------------


def test_readme_python_example():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "README.md")).read()
    section = readme.split("## From Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    # 10 and 9 are promoters, 3 a detractor: (2 - 1) / 3 = 33.3...
    assert scope["lake"].sql("SELECT nps(score) AS n FROM answers").to_arrow().to_pydict()["n"] == [approx(100 / 3)]
    assert sorted(scope["by_channel"]["channel"].to_list()) == ["app", "chat", "email", "phone", "web"]


# ---- lifetime value ------------------------------------------------------------------------------


def test_clv_functions_through_python(lake):
    # 50 per purchase × 5 a year × 3 years
    assert lake.sql("SELECT clv(50, 5, 3) AS v").to_arrow().to_pydict()["v"] == [750.0]
    # P(alive) at the published CDNOW estimates, by the paper's formula evaluated here
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    x, t_x, t = 2, 30.43, 38.86
    expected = 1 / (1 + a / (b + x - 1) * ((alpha + t) / (alpha + t_x)) ** (r + x))
    got = lake.sql(
        "SELECT bgnbd_p_alive(named_struct('r', 0.243, 'alpha', 4.414, 'a', 0.793, 'b', 2.426), 2, 30.43, 38.86) AS p"
    ).to_arrow().to_pydict()["p"][0]
    assert got == approx(expected)
    # a fit over a polars frame of customer summaries returns a struct with every parameter
    frame = pl.DataFrame({"x": [0, 1, 3, 0, 2], "t_x": [0.0, 5.0, 20.0, 0.0, 12.0], "t": [30.0, 30.0, 30.0, 25.0, 28.0]})
    lake.register("summaries", frame)
    fit = lake.sql("SELECT bgnbd_fit(x, t_x, t) AS f FROM summaries").to_arrow().to_pylist()[0]["f"]
    assert set(fit) == {"r", "alpha", "a", "b", "log_likelihood", "customers", "converged"}
    assert fit["customers"] == 5


def test_memory_limit_spills_and_bounds():
    # 3 million BIGINTs (24 MB) sorted within 16 MB: the sort spills and still answers.
    lake = cxlake.Lake(tables={}, memory_limit="16M")
    t = lake.sql("SELECT v FROM generate_series(1, 3000000) t(v) ORDER BY v DESC").to_arrow()
    assert t.num_rows == 3_000_000 and t.column(0)[0].as_py() == 3_000_000
    # An aggregate that must hold its whole input fails within 1 MB, with the engine's message.
    small = cxlake.Lake(tables={}, memory_limit=1 << 20)
    with pytest.raises(cxlake.CxlakeError, match="Resources exhausted"):
        small.sql("SELECT cardinality(array_agg(v)) FROM generate_series(1, 2000000) t(v)").to_arrow()
    with pytest.raises(cxlake.CxlakeError, match="invalid size '4X'"):
        cxlake.Lake(tables={}, memory_limit="4X")


def test_copy_runs_once_and_commits(tmp_path, lake):
    out = tmp_path / "kpis"
    result = lake.sql(
        f"COPY (SELECT channel, nps(score) AS nps FROM surveys GROUP BY channel) TO '{out}/' "
        "STORED AS PARQUET PARTITIONED BY (channel)"
    )
    # It ran at once: consuming the result reads the count, it does not write again.
    assert result.to_arrow().to_pydict()["count"] == [5]
    assert result.to_arrow().to_pydict()["count"] == [5]
    assert (out / "_SUCCESS").exists()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "channel=app", "channel=chat", "channel=email", "channel=phone", "channel=web"]
    assert all(len(list(p.iterdir())) == 1 for p in out.iterdir() if p.is_dir())
    # A failing COPY raises and leaves the target as it was.
    with pytest.raises(cxlake.CxlakeError, match="invalid NPS score 11"):
        lake.sql(f"COPY (SELECT 'web' AS channel, nps(11) AS nps) TO '{out}/' STORED AS PARQUET PARTITIONED BY (channel)")
    assert len(list((out / "channel=web").iterdir())) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cxlake-staging")]


# ---- on a cluster (docs/cluster.md) -----------------------------------------------------------


def test_a_cluster_that_cannot_be_reached_is_named():
    with pytest.raises(cxlake.CxlakeError, match="cannot reach the cxlake scheduler at df://127.0.0.1:9"):
        cxlake.Lake(cluster="df://127.0.0.1:9")


@pytest.fixture(scope="module")
def cluster_url():
    """A scheduler and one executor of the cxlake binary scripts/test built ($CXLAKE_BIN)."""
    import subprocess

    binary = os.environ.get("CXLAKE_BIN")
    if not binary or not os.path.exists(binary):
        pytest.fail("CXLAKE_BIN names no cxlake binary: run through `bash scripts/test`, which sets it")
    scheduler = subprocess.Popen(
        [binary, "cluster", "scheduler", "--port", "0"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    nodes = [scheduler]
    try:
        # The scheduler prints "cxlake scheduler listening on HOST:PORT" once it accepts connections.
        line = []
        reader = threading.Thread(target=lambda: line.append(scheduler.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        assert line and line[0].startswith("cxlake scheduler listening on "), line
        url = "df://" + line[0].split()[-1]
        port, grpc_port = free_port(), free_port()
        nodes.append(
            subprocess.Popen(
                [binary, "cluster", "executor", "--scheduler", url, "--port", str(port), "--grpc-port", str(grpc_port)],
                stdout=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
        )
        wait_for_port(grpc_port, "the executor", nodes[-1])
        yield url
    finally:
        for node in nodes:
            node.kill()
            node.wait()


def test_queries_and_settings_run_on_a_cluster(cluster_url, lake):
    remote = cxlake.Lake(cluster=cluster_url)
    query = "SELECT channel, nps(score) AS nps, csat(satisfaction) AS csat FROM surveys GROUP BY channel ORDER BY channel"
    want, got = lake.sql(query).to_arrow().to_pydict(), remote.sql(query).to_arrow().to_pydict()
    assert got["channel"] == want["channel"]
    assert got["nps"] == approx(want["nps"]) and got["csat"] == approx(want["csat"])
    bad = "SELECT nps(s) AS nps FROM (VALUES (9), (11)) t(s)"
    with pytest.raises(cxlake.CxlakeError, match="invalid NPS score 11"):
        remote.sql(bad).to_arrow()
    remote.sql("SET cxlake.invalid_input = 'skip'").to_arrow()
    assert remote.sql(bad).to_arrow().to_pydict() == {"nps": [100.0]}
