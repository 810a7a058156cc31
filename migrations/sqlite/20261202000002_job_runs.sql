-- Periodic jobs: one row per period a job ran for, written by the one
-- process that claimed it (app/src/jobs/periodic.rs). The primary key is
-- what lets one claim succeed.
CREATE TABLE job_runs (
    job        TEXT    NOT NULL,
    -- The period's number, counted from the Unix epoch in periods of the
    -- job's length.
    period     INTEGER NOT NULL,
    -- Seconds since the Unix epoch.
    claimed_at INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY (job, period)
);
