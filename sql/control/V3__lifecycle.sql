-- Lifecycle: when a tenant was suspended or (softly) deleted; retention counts from deleted_at.
ALTER TABLE tenants
    ADD COLUMN suspended_at timestamptz,
    ADD COLUMN deleted_at   timestamptz;

CREATE INDEX tenants_deleted_at ON tenants (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX audit_log_at ON audit_log (at);
