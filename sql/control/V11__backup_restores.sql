-- The journal of `restore-backup`: one row per tenant while a restore runs. A siloed restore
-- loads a fresh staging database, then swaps it in by renames (tenant database → retired,
-- staging → tenant database) and drops the retired one; a run killed at any point is finished
-- (or, before the swap, undone) by the next `restore-backup` of the tenant, which reads this
-- row. A pooled restore is one transaction and needs the row only to refuse a concurrent one.
CREATE TABLE backup_restores (
    tenant_id        uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    backup_id        text NOT NULL,
    phase            text NOT NULL CHECK (phase IN ('loading', 'swapping')),
    staging_database text,
    retired_database text,
    actor            text NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now()
);
