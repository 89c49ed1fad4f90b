-- The nightly KPI job over the sample lake: NPS, CSAT and first response time by channel for
-- one day, written back partitioned by day.
--
--   cxlake run sample-data/jobs/daily_kpis.sql --param run_date=2025-03-01 --param out=/tmp/kpis

CREATE VIEW day_surveys AS
SELECT * FROM surveys WHERE CAST(responded_at AS DATE) = DATE '${run_date}';

CREATE VIEW day_tickets AS
SELECT * FROM tickets WHERE CAST(created_at AS DATE) = DATE '${run_date}';

COPY (SELECT DATE '${run_date}' AS day, channel, count(*) AS answers, nps(score) AS nps,
             csat(satisfaction) AS csat
      FROM day_surveys GROUP BY channel)
TO '${out}/survey_kpis/' STORED AS PARQUET PARTITIONED BY (day);

COPY (SELECT DATE '${run_date}' AS day, channel, count(*) AS tickets,
             first_response_time(created_at, first_response_at) AS first_response_seconds
      FROM day_tickets GROUP BY channel)
TO '${out}/ticket_kpis/' STORED AS PARQUET PARTITIONED BY (day);
