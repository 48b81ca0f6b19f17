-- Rollups of attempts per minute (and per 20 minutes), which the dashboard reads instead of
-- a day of attempts (see src/store/rollup.rs). They are written with the attempt records and
-- deleted past 25 hours by the janitor (through the `minute` indexes) and with an erased org.
CREATE TABLE attempt_minutes (
    webhook_id    TEXT NOT NULL,
    minute        BIGINT NOT NULL, -- epoch minute of the attempts' start
    outcome       BIGINT NOT NULL, -- 0 delivered, 1 an HTTP error, 2 no answer
    latency_class BIGINT NOT NULL, -- index into LATENCY_BOUNDS_MS
    attempts      BIGINT NOT NULL,
    PRIMARY KEY (webhook_id, minute, outcome, latency_class)
);
CREATE INDEX attempt_minutes_by_minute ON attempt_minutes (minute);

-- The same per 20 minutes (`minute`: the period's first), for the day chart.
CREATE TABLE attempt_20min (
    webhook_id    TEXT NOT NULL,
    minute        BIGINT NOT NULL,
    outcome       BIGINT NOT NULL,
    latency_class BIGINT NOT NULL,
    attempts      BIGINT NOT NULL,
    PRIMARY KEY (webhook_id, minute, outcome, latency_class)
);
CREATE INDEX attempt_20min_by_minute ON attempt_20min (minute);

CREATE TABLE webhook_minutes (
    webhook_id           TEXT NOT NULL,
    minute               BIGINT NOT NULL,
    delivered            BIGINT NOT NULL, -- deliveries that ended delivered
    failed               BIGINT NOT NULL, -- deliveries that ended failed (retries exhausted)
    last_attempt_at      BIGINT NOT NULL, -- the minute's latest attempt, and its answer
    last_response_status BIGINT,
    last_error           TEXT,
    PRIMARY KEY (webhook_id, minute)
);
CREATE INDEX webhook_minutes_by_minute ON webhook_minutes (minute);

-- The last 25 hours of attempts, so an upgraded database draws the same charts. An attempt
-- ended its delivery when it is the delivery's last one and the delivery is done.
INSERT INTO attempt_minutes (webhook_id, minute, outcome, latency_class, attempts)
SELECT d.webhook_id, a.started_at / 60000,
       CASE WHEN a.error IS NULL THEN 0 WHEN a.response_status IS NOT NULL THEN 1 ELSE 2 END,
       CASE WHEN a.duration_ms < 1 THEN 0 WHEN a.duration_ms < 2 THEN 1 WHEN a.duration_ms < 3 THEN 2 WHEN a.duration_ms < 4 THEN 3 WHEN a.duration_ms < 5 THEN 4 WHEN a.duration_ms < 6 THEN 5 WHEN a.duration_ms < 8 THEN 6 WHEN a.duration_ms < 10 THEN 7 WHEN a.duration_ms < 12 THEN 8 WHEN a.duration_ms < 15 THEN 9 WHEN a.duration_ms < 20 THEN 10 WHEN a.duration_ms < 25 THEN 11 WHEN a.duration_ms < 30 THEN 12 WHEN a.duration_ms < 40 THEN 13 WHEN a.duration_ms < 50 THEN 14 WHEN a.duration_ms < 60 THEN 15 WHEN a.duration_ms < 80 THEN 16 WHEN a.duration_ms < 100 THEN 17 WHEN a.duration_ms < 120 THEN 18 WHEN a.duration_ms < 150 THEN 19 WHEN a.duration_ms < 200 THEN 20 WHEN a.duration_ms < 250 THEN 21 WHEN a.duration_ms < 300 THEN 22 WHEN a.duration_ms < 400 THEN 23 WHEN a.duration_ms < 500 THEN 24 WHEN a.duration_ms < 600 THEN 25 WHEN a.duration_ms < 800 THEN 26 WHEN a.duration_ms < 1000 THEN 27 WHEN a.duration_ms < 1200 THEN 28 WHEN a.duration_ms < 1500 THEN 29 WHEN a.duration_ms < 2000 THEN 30 WHEN a.duration_ms < 2500 THEN 31 WHEN a.duration_ms < 3000 THEN 32 WHEN a.duration_ms < 4000 THEN 33 WHEN a.duration_ms < 5000 THEN 34 WHEN a.duration_ms < 6000 THEN 35 WHEN a.duration_ms < 8000 THEN 36 WHEN a.duration_ms < 10000 THEN 37 WHEN a.duration_ms < 15000 THEN 38 WHEN a.duration_ms < 20000 THEN 39 WHEN a.duration_ms < 30000 THEN 40 WHEN a.duration_ms < 60000 THEN 41 ELSE 42 END,
       COUNT(*)
FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE a.started_at >= (extract(epoch FROM now())::bigint - 25 * 3600) * 1000
GROUP BY 1, 2, 3, 4;

INSERT INTO attempt_20min (webhook_id, minute, outcome, latency_class, attempts)
SELECT webhook_id, minute - minute % 20, outcome, latency_class, SUM(attempts)::bigint
FROM attempt_minutes GROUP BY 1, 2, 3, 4;

INSERT INTO webhook_minutes (webhook_id, minute, delivered, failed, last_attempt_at, last_response_status, last_error)
SELECT d.webhook_id, a.started_at / 60000,
       COUNT(*) FILTER (WHERE a.attempt_number = d.attempt_count AND d.status = 'delivered'),
       COUNT(*) FILTER (WHERE a.attempt_number = d.attempt_count AND d.status = 'failed'),
       MAX(a.started_at),
       (array_agg(a.response_status ORDER BY a.started_at DESC))[1],
       (array_agg(a.error ORDER BY a.started_at DESC))[1]
FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE a.started_at >= (extract(epoch FROM now())::bigint - 25 * 3600) * 1000
GROUP BY 1, 2;
