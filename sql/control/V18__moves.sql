-- Moves of a tenant's data to another database (`set-tier` across isolation models; later
-- `move --to <server>`), journaled like provisioning so that a run killed at any point is
-- finished (or, before its switch, cancelled) by running the command again.

-- `moving`: the tenant is closed in the data plane while its rows are copied; it returns to
-- the status it had when the move began.
ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_status_check CHECK (status IN (
    'provisioning', 'active', 'suspending', 'suspended', 'resuming',
    'deprovisioning', 'deleted', 'restoring', 'deleting', 'moving'));

-- The move in flight, at most one per tenant: where its data comes from and goes to, and what
-- the tenant returns to. Written with the `moving` status, deleted with the status that ends
-- it, in the same transactions.
CREATE TABLE moves (
    tenant_id      uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('upgrade', 'downgrade', 'server')),
    return_status  text NOT NULL CHECK (return_status IN ('active', 'suspended')),
    from_tier      text NOT NULL,
    to_tier        text NOT NULL,
    from_isolation text NOT NULL CHECK (from_isolation IN ('pooled', 'siloed')),
    to_isolation   text NOT NULL CHECK (to_isolation IN ('pooled', 'siloed')),
    from_database  text NOT NULL,
    from_role      text NOT NULL,
    to_database    text NOT NULL,
    to_role        text NOT NULL,
    -- The data-plane servers of a move between servers (issue 11's registry); NULL: the
    -- server the tenant databases are on.
    from_server    text,
    to_server      text,
    actor          text NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per step of the move that completed, by stable name (`move_step::MoveStep`), with
-- what it found (the copy's row counts).
CREATE TABLE move_journal (
    tenant_id    uuid NOT NULL REFERENCES moves (tenant_id) ON DELETE CASCADE,
    step         text NOT NULL CHECK (step ~ '^[a-z][a-z0-9_]{0,62}$'),
    duration_ms  integer NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}',
    completed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, step)
);
