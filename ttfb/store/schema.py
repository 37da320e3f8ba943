"""ClickHouse schema as ordered, idempotent migrations.

Every table is a ``ReplacingMergeTree`` whose sorting key ends in ``event_id``,
so a replayed event collapses into its first copy; the sink also skips ids it
has already written. Sorting keys put scenario first because every dashboard
query filters on it.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "runs, measurements, commands, dead letters, event log", [
        """CREATE TABLE IF NOT EXISTS {db}.events (
            event_id String, type LowCardinality(String), occurred_at DateTime64(6, 'UTC'),
            scenario String, topic LowCardinality(String), payload String
        ) ENGINE = ReplacingMergeTree ORDER BY (type, occurred_at, event_id)""",
        """CREATE TABLE IF NOT EXISTS {db}.runs (
            event_id String, run_id String, request_id String,
            occurred_at DateTime64(6, 'UTC'), scenario LowCardinality(String),
            repo String, commit String, branch LowCardinality(String),
            purpose LowCardinality(String), arm String, repetition UInt32,
            correlation_id String, hardware_id LowCardinality(String), fingerprint String,
            status LowCardinality(String), ttfb_ms Float64, components Map(String, Float64),
            reason String, exit_code Nullable(Int32), stderr_tail String,
            modules Array(String), phases Array(String), author String, subject String,
            profile String
        ) ENGINE = ReplacingMergeTree ORDER BY (scenario, occurred_at, event_id)""",
        """CREATE TABLE IF NOT EXISTS {db}.measurements (
            event_id String, run_id String, occurred_at DateTime64(6, 'UTC'),
            scenario LowCardinality(String), commit String, branch LowCardinality(String),
            purpose LowCardinality(String), arm String, hardware_id LowCardinality(String),
            component LowCardinality(String), ms Float64
        ) ENGINE = ReplacingMergeTree
          ORDER BY (scenario, component, hardware_id, occurred_at, event_id)""",
        """CREATE TABLE IF NOT EXISTS {db}.commands (
            event_id String, type LowCardinality(String), occurred_at DateTime64(6, 'UTC'),
            scenario String, repo String, commit String, purpose LowCardinality(String),
            request_id String, correlation_id String, runs UInt32, payload String
        ) ENGINE = ReplacingMergeTree ORDER BY (occurred_at, event_id)""",
        """CREATE TABLE IF NOT EXISTS {db}.dead_letters (
            event_id String, occurred_at DateTime64(6, 'UTC'), source_topic String,
            reason String, raw_b64 String, refused_command Bool, producer String
        ) ENGINE = ReplacingMergeTree ORDER BY (occurred_at, event_id)""",
    ]),
    (2, "detections, calibration, bisects, alerts, experiments, skips", [
        """CREATE TABLE IF NOT EXISTS {db}.detections (
            event_id String, type LowCardinality(String), occurred_at DateTime64(6, 'UTC'),
            detection_id String, scenario LowCardinality(String), component String,
            hardware_id String, branch String, commit String, good_commit String,
            direction LowCardinality(String), effect_ms Float64, effect_pct Float64,
            ci_low_pct Float64, ci_high_pct Float64, p_value Float64, threshold Float64,
            runs_spent UInt32
        ) ENGINE = ReplacingMergeTree ORDER BY (scenario, occurred_at, event_id)""",
        """CREATE TABLE IF NOT EXISTS {db}.calibration (
            event_id String, occurred_at DateTime64(6, 'UTC'), scenario LowCardinality(String),
            series String, tests_per_week Float64, budget_per_week Float64,
            chosen_threshold Float64, chosen_fpr Float64, points String
        ) ENGINE = ReplacingMergeTree ORDER BY (scenario, series, occurred_at, event_id)""",
        """CREATE TABLE IF NOT EXISTS {db}.bisects (
            event_id String, occurred_at DateTime64(6, 'UTC'), bisect_id String,
            detection_id String, scenario LowCardinality(String), component String,
            good String, bad String, culprit String, culprits Array(String), author String,
            subject String, effect_ms Float64, effect_pct Float64, confidence Float64,
            runs_spent UInt32, steps String, explanation String, error String
        ) ENGINE = ReplacingMergeTree ORDER BY (scenario, occurred_at, event_id)""",
        """CREATE TABLE IF NOT EXISTS {db}.alerts (
            event_id String, occurred_at DateTime64(6, 'UTC'), alert_id String,
            kind LowCardinality(String), status LowCardinality(String),
            scenario LowCardinality(String), component String, commit String,
            effect_ms Float64, effect_pct Float64, ci_low_pct Float64, ci_high_pct Float64,
            culprit String, author String, subject String, link String
        ) ENGINE = ReplacingMergeTree ORDER BY (scenario, occurred_at, event_id)""",
        """CREATE TABLE IF NOT EXISTS {db}.experiments (
            event_id String, occurred_at DateTime64(6, 'UTC'), experiment_id String,
            scenario LowCardinality(String), arm_a String, arm_b String,
            verdict LowCardinality(String), runs_spent UInt32, components String
        ) ENGINE = ReplacingMergeTree ORDER BY (scenario, occurred_at, event_id)""",
        """CREATE TABLE IF NOT EXISTS {db}.skips (
            event_id String, occurred_at DateTime64(6, 'UTC'), scenario LowCardinality(String),
            repo String, commit String, branch String, reason String
        ) ENGINE = ReplacingMergeTree ORDER BY (scenario, occurred_at, event_id)""",
    ]),
    (3, "detections carry their repository", [
        "ALTER TABLE {db}.detections ADD COLUMN IF NOT EXISTS repo String DEFAULT 'demo'",
    ]),
    (4, "bisects of improvements carry their direction", [
        "ALTER TABLE {db}.bisects ADD COLUMN IF NOT EXISTS direction"
        " LowCardinality(String) DEFAULT 'regression'",
    ]),
    (5, "bisects carry the effect's CI; alerts their culprit's posterior", [
        "ALTER TABLE {db}.bisects ADD COLUMN IF NOT EXISTS ci_low_pct Float64 DEFAULT 0",
        "ALTER TABLE {db}.bisects ADD COLUMN IF NOT EXISTS ci_high_pct Float64 DEFAULT 0",
        "ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS culprit_confidence Float64 DEFAULT 0",
    ]),
    (6, "bisects say whether the confirmed change reproduced", [
        "ALTER TABLE {db}.bisects ADD COLUMN IF NOT EXISTS reproduced Bool DEFAULT true",
    ]),
    (7, "the watcher's planned commits, rewritten branches and problems", [
        """CREATE TABLE IF NOT EXISTS {db}.watch (
            event_id String, occurred_at DateTime64(6, 'UTC'), type LowCardinality(String),
            repo String, branch String, commit String, purpose LowCardinality(String),
            requested Array(String), skipped Array(String), kind LowCardinality(String),
            detail String, vanished Array(String)
        ) ENGINE = ReplacingMergeTree ORDER BY (repo, branch, occurred_at, event_id)""",
    ]),
    (8, "findings carry the hardware class of their series", [
        "ALTER TABLE {db}.detections ADD COLUMN IF NOT EXISTS hardware_class String DEFAULT ''",
    ]),
    (9, "a bisect whose run budget ran out says where the culprit most likely is", [
        "ALTER TABLE {db}.bisects ADD COLUMN IF NOT EXISTS inconclusive Bool DEFAULT false",
        "ALTER TABLE {db}.bisects ADD COLUMN IF NOT EXISTS likely_after String DEFAULT ''",
        "ALTER TABLE {db}.bisects ADD COLUMN IF NOT EXISTS likely_last String DEFAULT ''",
        "ALTER TABLE {db}.bisects ADD COLUMN IF NOT EXISTS likely_mass Float64 DEFAULT 0",
    ]),
    (10, "alerts' triage: acknowledged, expected, invalid or fixed, by whom and why", [
        """CREATE TABLE IF NOT EXISTS {db}.triage (
            event_id String, occurred_at DateTime64(6, 'UTC'), alert_id String,
            scenario LowCardinality(String), component String, kind LowCardinality(String),
            status LowCardinality(String), by String, note String
        ) ENGINE = ReplacingMergeTree ORDER BY (alert_id, occurred_at, event_id)""",
    ]),
    (11, "per-commit aggregates of runs past the retention age", [
        """CREATE TABLE IF NOT EXISTS {db}.commit_aggregates (
            scenario LowCardinality(String), repo String, branch String, hardware_id String,
            commit String, purpose LowCardinality(String), component LowCardinality(String),
            runs UInt32, mean_ms Float64, median_ms Float64, min_ms Float64, max_ms Float64,
            first_at DateTime64(6, 'UTC'), last_at DateTime64(6, 'UTC'),
            aggregated_at DateTime64(6, 'UTC')
        ) ENGINE = ReplacingMergeTree(aggregated_at)
          ORDER BY (scenario, component, hardware_id, branch, commit, purpose)""",
    ]),
    (12, "checkpoints of the decision state; when each event was stored", [
        # set on insert; rows stored before this migration take its time
        "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS"
        " stored_at DateTime64(6, 'UTC') DEFAULT now64(6)",
        "ALTER TABLE {db}.events MATERIALIZE COLUMN stored_at SETTINGS mutations_sync = 2",
        """CREATE TABLE IF NOT EXISTS {db}.checkpoints (
            rules String, at DateTime64(6, 'UTC'), at_id String, scenario String,
            scenarios UInt32, state String, written_at DateTime64(6, 'UTC')
        ) ENGINE = ReplacingMergeTree ORDER BY (rules, at, at_id, written_at, scenario)""",
    ]),
    (13, "bisects and alerts name the files the culprit changed that the runs read", [
        "ALTER TABLE {db}.bisects ADD COLUMN IF NOT EXISTS changed_files Array(String)"
        " DEFAULT []",
        "ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS changed_files Array(String)"
        " DEFAULT []",
    ]),
    (14, "findings, bisects and alerts carry TTFB as a whole beside the component", [
        f"ALTER TABLE {{db}}.{table} ADD COLUMN IF NOT EXISTS {column} Float64 DEFAULT 0"
        for table in ("detections", "bisects", "alerts")
        for column in ("ttfb_effect_ms", "ttfb_effect_pct", "ttfb_ci_low_pct",
                       "ttfb_ci_high_pct")
    ]),
]

MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
    version UInt32, description String, applied_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree ORDER BY version"""

TABLES = (
    "events", "runs", "measurements", "commands", "dead_letters", "detections",
    "calibration", "bisects", "alerts", "experiments", "skips", "watch", "triage",
    "commit_aggregates", "checkpoints",
)
