-- Metered usage events, their running totals per calendar month, and measured usage.

-- One row per metered event. The primary key is the idempotency key: the same key recorded
-- twice for a tenant counts once, forever. Events without a key get a generated one.
-- No foreign key and no secondary index: bulk ingestion stays fast; purge deletes explicitly.
CREATE TABLE usage_events (
    tenant_id   uuid NOT NULL,
    key         text NOT NULL,
    resource    text NOT NULL,
    quantity    bigint NOT NULL CHECK (quantity > 0),
    at          timestamptz NOT NULL,
    period      date NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- The sum of usage_events per tenant, resource and month (period = its first day, UTC),
-- kept in the same transaction as the events: quota checks read one row.
CREATE TABLE usage_totals (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    resource  text NOT NULL,
    period    date NOT NULL,
    quantity  bigint NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (tenant_id, resource, period)
);

-- The last measurement of a measured resource (users, storage_mb).
CREATE TABLE measured_usage (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    resource    text NOT NULL,
    quantity    bigint NOT NULL CHECK (quantity >= 0),
    measured_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, resource)
);
