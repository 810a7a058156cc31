-- Periodic jobs. The same table as migrations/sqlite: keep the two in step.
-- One row per period a job ran for, written by the one process that
-- claimed it (app/src/jobs/periodic.rs). The primary key is what lets one
-- claim succeed.
CREATE TABLE job_runs (
    job        TEXT   NOT NULL,
    -- The period's number, counted from the Unix epoch in periods of the
    -- job's length.
    period     BIGINT NOT NULL,
    -- Seconds since the Unix epoch.
    claimed_at BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::BIGINT),
    PRIMARY KEY (job, period)
);
