-- Ownership and retention.
--
-- This control plane's id: every database and role tenantctl creates carries the comment
-- 'tenantctl:<this id>:<tenant id>' (siloed) or 'tenantctl:<this id>:pooled' (the shared pooled
-- database and application role), written in the step that creates it. tenantctl changes and
-- drops only objects that carry its mark.
CREATE TABLE control_plane (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO control_plane DEFAULT VALUES;

-- CREATE DATABASE cannot share a transaction with the COMMENT that marks it. A claim is written
-- after tenantctl saw that the name was free and before it creates the database, and removed
-- once the mark is written: a run killed in between finds the claim and finishes the marking.
CREATE TABLE database_claims (
    database_name text PRIMARY KEY,
    mark          text NOT NULL,
    claimed_at    timestamptz NOT NULL DEFAULT now()
);

-- Retention is fixed when a tenant is deleted: restore and purge --expired read purge_after,
-- so a later change of retention_days affects only later deletions.
ALTER TABLE tenants ADD COLUMN purge_after timestamptz;

-- Tenants deleted before this migration: the retention their deprovision audit entry recorded,
-- else the default of 30 days.
UPDATE tenants t
SET purge_after = t.deleted_at + make_interval(days => coalesce((
        SELECT (a.details ->> 'retention_days')::int
        FROM audit_log a
        WHERE a.tenant_id = t.id AND a.action = 'deprovision'
          AND jsonb_typeof(a.details -> 'retention_days') = 'number'
        ORDER BY a.id DESC
        LIMIT 1), 30))
WHERE t.deleted_at IS NOT NULL;

ALTER TABLE tenants ADD CONSTRAINT tenants_deleted_has_purge_after
    CHECK (status <> 'deleted' OR purge_after IS NOT NULL);
