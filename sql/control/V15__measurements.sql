-- The history of measured usage (users, storage_mb), so that it can be billed: users at the
-- month's peak, storage_mb as the month's average (MB-months).
--
-- One row per tenant, measured resource and day (UTC), folded by upsert as measurements arrive
-- (docs/decisions.md, "Measured usage history"): the day's peak, its first and last measurement,
-- and `area`, the integral of the measured level from the first to the last measurement of the
-- day in unit-seconds (each level holds until the next measurement). Billing adds the stretch
-- before the first measurement (the previous day's last level, carried forward) and after the
-- last. Times are whole seconds, so the integral is exact in a bigint (at most 10^12 × 86,400).
-- `measured_usage` keeps the latest level for quota checks.
CREATE TABLE measurements (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    resource   text NOT NULL,
    day        date NOT NULL,
    samples    integer NOT NULL CHECK (samples > 0),
    peak       bigint NOT NULL CHECK (peak >= 0),
    first_at   timestamptz NOT NULL,
    last_value bigint NOT NULL CHECK (last_value >= 0),
    last_at    timestamptz NOT NULL,
    area       bigint NOT NULL CHECK (area >= 0),
    PRIMARY KEY (tenant_id, resource, day)
);

-- Tenants measured before this migration start their history with their latest measurement,
-- on the day it was taken: it is the level they had then, and carrying it forward is what
-- billing does for a day without a measurement.
INSERT INTO measurements (tenant_id, resource, day, samples, peak, first_at, last_value, last_at, area)
SELECT tenant_id, resource, (date_trunc('second', measured_at) AT TIME ZONE 'UTC')::date, 1, quantity,
       date_trunc('second', measured_at), quantity, date_trunc('second', measured_at), 0
FROM measured_usage;
