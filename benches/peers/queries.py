"""The benchmark's queries: each metric as a cxlake user writes it and as users of each peer write it.

Engines:
  cxlake      cxlake's functions, through its Python package
  datafusion  plain SQL through the same engine (DataFusion without cxlake's functions)
  duckdb      hand-written SQL in DuckDB (CASE WHEN, LAG, self-joins)
  clickhouse  ClickHouse through chdb, with its native functions where it has them

A query's `floor` names the query that reads the same columns with the cheapest aggregate
(`count`, `sum`) over the same keys: the least any metric over those columns can cost.
Floors themselves run on every engine except cxlake (they use no cxlake function).
"""

ENGINES = ["cxlake", "datafusion", "duckdb", "clickhouse"]


def ts(dialect, text):
    """A UTC timestamp literal ('2025-01-08 00:00:00') in each dialect."""
    if dialect == "clickhouse":
        return f"toDateTime64('{text}', 6, 'UTC')"
    if dialect == "duckdb":
        return f"TIMESTAMPTZ '{text}+00'"
    return f"'{text.replace(' ', 'T')}Z'"


def months(dialect):
    """The twelve months of 2025 as rows (m, period_start, period_end)."""
    bounds = [f"2025-{m:02d}-01 00:00:00" for m in range(1, 13)] + ["2026-01-01 00:00:00"]
    if dialect == "clickhouse":
        rows = ", ".join(f"({m + 1}, '{bounds[m]}', '{bounds[m + 1]}')" for m in range(12))
        return f"values('m UInt8, period_start DateTime64(3, \\'UTC\\'), period_end DateTime64(3, \\'UTC\\')', {rows}) AS months"
    # Plain string literals in VALUES stay strings in DataFusion: cast them.
    lit = (lambda t: f"CAST({ts(dialect, t)} AS TIMESTAMP)") if dialect == "datafusion" else (lambda t: ts(dialect, t))
    rows = ", ".join(f"({m + 1}, {lit(bounds[m])}, {lit(bounds[m + 1])})" for m in range(12))
    return f"(VALUES {rows}) AS months(m, period_start, period_end)"


def case_count(cond):
    return f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END)"


def nps_sql(count, col="score"):
    return f"100.0 * ({count(f'{col} >= 9')} - {count(f'{col} <= 6')}) / count({col})"


def ch_count(cond):
    return f"countIf({cond})"


def funnel_self_join(dialect):
    """The deepest of four steps reached within an hour of the first, per user, by self-joins:
    for each page view the earliest next step after it and within the window, and so on."""
    hour = "INTERVAL 3600 SECOND" if dialect == "duckdb" else "INTERVAL '3600 seconds'"
    return f"""
WITH s1 AS (SELECT user_id, ts AS t1 FROM events WHERE event = 'page_view'),
s2 AS (SELECT s1.user_id, s1.t1, min(e.ts) AS t2 FROM s1 JOIN events e
       ON e.user_id = s1.user_id AND e.event = 'product_view' AND e.ts >= s1.t1 AND e.ts <= s1.t1 + {hour}
       GROUP BY s1.user_id, s1.t1),
s3 AS (SELECT s2.user_id, s2.t1, min(e.ts) AS t3 FROM s2 JOIN events e
       ON e.user_id = s2.user_id AND e.event = 'add_to_cart' AND e.ts >= s2.t2 AND e.ts <= s2.t1 + {hour}
       GROUP BY s2.user_id, s2.t1),
s4 AS (SELECT DISTINCT s3.user_id FROM s3 JOIN events e
       ON e.user_id = s3.user_id AND e.event = 'purchase' AND e.ts >= s3.t3 AND e.ts <= s3.t1 + {hour}),
levels AS (SELECT DISTINCT user_id, 1 AS level FROM s1 UNION ALL SELECT DISTINCT user_id, 2 FROM s2
           UNION ALL SELECT DISTINCT user_id, 3 FROM s3 UNION ALL SELECT user_id, 4 FROM s4),
per_user AS (SELECT u.user_id, coalesce(max(l.level), 0) AS level
             FROM (SELECT DISTINCT user_id FROM events) u LEFT JOIN levels l ON l.user_id = u.user_id
             GROUP BY u.user_id)
SELECT level, count(*) AS users FROM per_user GROUP BY level ORDER BY level"""


def sessions_lag(dialect):
    gap = "INTERVAL 1800 SECOND" if dialect == "duckdb" else "INTERVAL '1800 seconds'"
    return f"""
SELECT {case_count('prev IS NULL')} AS users, {case_count(f'prev IS NULL OR ts - prev > {gap}')} AS sessions
FROM (SELECT ts, lag(ts) OVER (PARTITION BY user_id ORDER BY ts) AS prev FROM events)"""


def retention_conditions(dialect):
    t = lambda text: ts(dialect, text)  # noqa: E731
    return [
        f"ts < {t('2025-01-08 00:00:00')}",
        f"ts >= {t('2025-01-08 00:00:00')} AND ts < {t('2025-01-15 00:00:00')}",
        f"ts >= {t('2025-01-29 00:00:00')} AND ts < {t('2025-02-05 00:00:00')}",
    ]


def retention_max(dialect):
    c1, c2, c3 = (f"max(CASE WHEN {c} THEN 1 ELSE 0 END)" for c in retention_conditions(dialect))
    return f"""
SELECT sum(c1) AS week1, sum(c1 * c2) AS week2, sum(c1 * c3) AS week5
FROM (SELECT user_id, {c1} AS c1, {c2} AS c2, {c3} AS c3 FROM events GROUP BY user_id)"""


def retention_native(dialect):
    conds = ", ".join(retention_conditions(dialect))
    return f"""
SELECT sum(r[1]) AS week1, sum(r[2]) AS week2, sum(r[3]) AS week5
FROM (SELECT user_id, retention({conds}) AS r FROM events GROUP BY user_id)"""


def churn(dialect, count):
    at_start = "signed_up_at < period_start AND (churned_at IS NULL OR churned_at >= period_start)"
    lost = f"{at_start} AND churned_at < period_end"
    return f"""
SELECT m, 100.0 * {count(lost)} / {count(at_start)} AS churn_rate
FROM customers CROSS JOIN {months(dialect)} GROUP BY m ORDER BY m"""


def frt(dialect):
    if dialect == "clickhouse":
        diff = "toUnixTimestamp64Milli(first_response_at) - toUnixTimestamp64Milli(created_at)"
    elif dialect == "duckdb":
        diff = "epoch_ms(first_response_at) - epoch_ms(created_at)"
    else:
        diff = "CAST(first_response_at AS BIGINT) - CAST(created_at AS BIGINT)"
    return f"SELECT channel, avg({diff}) / 1000.0 AS frt FROM tickets GROUP BY channel ORDER BY channel"


def same(sql):
    """The same text in every SQL engine (ClickHouse included)."""
    return {"datafusion": sql, "duckdb": sql, "clickhouse": sql}


def queries():
    """Every query, in the order of the results table. Keys: id, title, table, floor, main (part
    of the scaling runs), and one SQL text per engine (missing: the engine has no such form)."""
    q = []

    def add(id, title, table, sqls, floor=None, main=False):
        q.append(dict(id=id, title=title, table=table, floor=floor, main=main, sql=sqls))

    by_cr = "GROUP BY channel, region ORDER BY channel, region"
    add("floor_surveys", "scan floor surveys: count(score), sum(score)", "surveys",
        same("SELECT count(score), sum(score) FROM surveys"), main=True)
    add("floor_surveys_by_channel_region", "group-by floor: count(score), sum(score) GROUP BY channel, region",
        "surveys", same(f"SELECT channel, region, count(score), sum(score) FROM surveys {by_cr}"), main=True)
    add("nps", "NPS overall", "surveys", {
        "cxlake": "SELECT nps(score) FROM surveys",
        "datafusion": f"SELECT {nps_sql(case_count)} FROM surveys",
        "duckdb": f"SELECT {nps_sql(case_count)} FROM surveys",
        "clickhouse": f"SELECT {nps_sql(ch_count)} FROM surveys",
    }, floor="floor_surveys", main=True)
    add("nps_by_channel_region", "NPS GROUP BY channel, region", "surveys", {
        "cxlake": f"SELECT channel, region, nps(score) FROM surveys {by_cr}",
        "datafusion": f"SELECT channel, region, {nps_sql(case_count)} FROM surveys {by_cr}",
        "duckdb": f"SELECT channel, region, {nps_sql(case_count)} FROM surveys {by_cr}",
        "clickhouse": f"SELECT channel, region, {nps_sql(ch_count)} FROM surveys {by_cr}",
    }, floor="floor_surveys_by_channel_region", main=True)
    by_c = "GROUP BY channel ORDER BY channel"
    add("floor_surveys_by_channel", "group-by floor: count(satisfaction), sum(satisfaction) GROUP BY channel",
        "surveys", same(f"SELECT channel, count(satisfaction), sum(satisfaction) FROM surveys {by_c}"))
    csat = "100.0 * {n} / count(satisfaction)"
    add("csat_by_channel", "CSAT GROUP BY channel", "surveys", {
        "cxlake": f"SELECT channel, csat(satisfaction) FROM surveys {by_c}",
        "datafusion": f"SELECT channel, {csat.format(n=case_count('satisfaction >= 4'))} FROM surveys {by_c}",
        "duckdb": f"SELECT channel, {csat.format(n=case_count('satisfaction >= 4'))} FROM surveys {by_c}",
        "clickhouse": f"SELECT channel, {csat.format(n=ch_count('satisfaction >= 4'))} FROM surveys {by_c}",
    }, floor="floor_surveys_by_channel")
    add("floor_tickets_by_channel", "group-by floor: count(created_at), count(first_response_at) GROUP BY channel",
        "tickets", same(f"SELECT channel, count(created_at), count(first_response_at) FROM tickets {by_c}"))
    add("first_response_time_by_channel", "first response time GROUP BY channel", "tickets", {
        "cxlake": f"SELECT channel, first_response_time(created_at, first_response_at) FROM tickets {by_c}",
        "datafusion": frt("datafusion"),
        "duckdb": frt("duckdb"),
        "clickhouse": frt("clickhouse"),
    }, floor="floor_tickets_by_channel", main=True)
    add("conversion_rate_by_channel", "rate: first-contact resolution GROUP BY channel", "tickets", {
        "cxlake": f"SELECT channel, conversion_rate(first_contact_resolution) FROM tickets {by_c}",
        **{d: f"SELECT channel, 100.0 * {count('first_contact_resolution')} / count(first_contact_resolution) "
              f"FROM tickets {by_c}"
           for d, count in [("datafusion", case_count), ("duckdb", case_count), ("clickhouse", ch_count)]},
    }, floor="floor_tickets_by_channel")
    add("churn_rate_12_months", "churn rate for 12 months (customers x 12)", "customers", {
        "cxlake": f"""
SELECT m, churn_rate(signed_up_at, churned_at, period_start, period_end) AS churn_rate
FROM customers CROSS JOIN {months('datafusion')} GROUP BY m ORDER BY m""",
        "datafusion": churn("datafusion", case_count),
        "duckdb": churn("duckdb", case_count),
        "clickhouse": churn("clickhouse", ch_count),
    }, main=True)
    add("floor_events_by_user", "group-by floor: count(ts) GROUP BY user_id", "events",
        same("SELECT count(*), sum(n) FROM (SELECT user_id, count(ts) AS n FROM events GROUP BY user_id) AS u"),
        main=True)
    add("sessions_per_user", "sessions per user (30-minute gap)", "events", {
        "cxlake": """
SELECT count(*) AS users, sum(sessions) AS sessions
FROM (SELECT user_id, max(sid) AS sessions
      FROM (SELECT user_id, session_id(ts) OVER (PARTITION BY user_id ORDER BY ts) AS sid FROM events)
      GROUP BY user_id)""",
        "datafusion": sessions_lag("datafusion"),
        "duckdb": sessions_lag("duckdb"),
        "clickhouse": """
SELECT count() AS users, sum(s) AS sessions
FROM (SELECT user_id,
             1 + arrayCount(d -> d > 1800, arrayDifference(arraySort(groupArray(toInt64(toUnixTimestamp(ts)))))) AS s
      FROM events GROUP BY user_id)""",
    }, floor="floor_events_by_user", main=True)
    steps = "event = 'page_view', event = 'product_view', event = 'add_to_cart', event = 'purchase'"
    add("window_funnel_4_steps", "4-step funnel within 1 hour", "events", {
        "cxlake": f"""
SELECT level, count(*) AS users
FROM (SELECT user_id, window_funnel(3600, ts, {steps}) AS level FROM events GROUP BY user_id)
GROUP BY level ORDER BY level""",
        "datafusion": funnel_self_join("datafusion"),
        "duckdb": funnel_self_join("duckdb"),
        "clickhouse": f"""
SELECT level, count() AS users
FROM (SELECT user_id, windowFunnel(3600)(toUInt64(toUnixTimestamp(ts)), {steps}) AS level
      FROM events GROUP BY user_id)
GROUP BY level ORDER BY level""",
    }, floor="floor_events_by_user", main=True)
    add("retention_3_conditions", "retention, 3 conditions", "events", {
        "cxlake": retention_native("datafusion"),
        "datafusion": retention_max("datafusion"),
        "duckdb": retention_max("duckdb"),
        "clickhouse": retention_native("clickhouse"),
    }, floor="floor_events_by_user", main=True)
    return q
