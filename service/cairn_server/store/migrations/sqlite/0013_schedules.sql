-- Schedules (ScheduleService, cairn_server/schedules): each in one Cairn
-- namespace, firing a target at the due times of a cron expression (in
-- `time_zone`) or of an interval (anchor_at + k * interval_seconds).
-- `input` and `metadata` are JSON text. Due and fire times are seconds since
-- the epoch on the service's timer clock; `next_fire_at` is the claim: the
-- replica whose compare-and-set moves it fires that due time.
CREATE TABLE schedules (
    namespace TEXT NOT NULL,
    schedule_id TEXT NOT NULL,
    cron TEXT NOT NULL,
    interval_seconds REAL NOT NULL,
    time_zone TEXT NOT NULL,
    anchor_at REAL NOT NULL,
    target TEXT NOT NULL,
    input TEXT NOT NULL,
    metadata TEXT NOT NULL,
    thread_policy TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    overlap_policy TEXT NOT NULL,
    catchup_policy TEXT NOT NULL,
    paused INTEGER NOT NULL,
    next_fire_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    request_id TEXT NOT NULL,
    PRIMARY KEY (namespace, schedule_id)
);

-- Every replica asks for the due schedules of every namespace, soonest first.
CREATE INDEX schedules_due_idx ON schedules (next_fire_at) WHERE paused = 0;

-- One row per firing: a due time claimed (or a TriggerSchedule call) and
-- what came of it. Open firings (pending, waiting) are acted on by the
-- replica in `claimed_by` until `claim_until` (wall clock), then by any.
CREATE TABLE schedule_firings (
    namespace TEXT NOT NULL,
    schedule_id TEXT NOT NULL,
    firing_id TEXT NOT NULL,
    due_at REAL NOT NULL,
    fired_at REAL NOT NULL,
    state TEXT NOT NULL,
    run_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    message TEXT NOT NULL,
    triggered INTEGER NOT NULL,
    claimed_by TEXT NOT NULL,
    claim_until REAL NOT NULL,
    PRIMARY KEY (namespace, schedule_id, firing_id),
    FOREIGN KEY (namespace, schedule_id) REFERENCES schedules (namespace, schedule_id)
        ON DELETE CASCADE
);

-- A schedule's latest firings, newest first.
CREATE INDEX schedule_firings_recent_idx ON schedule_firings (namespace, schedule_id, fired_at);

-- The few open firings, for the replicas that look for work.
CREATE INDEX schedule_firings_open_idx ON schedule_firings (claim_until)
    WHERE state IN ('pending', 'waiting');
