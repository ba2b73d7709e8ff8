-- The control database: tenants, their provisioning journal, quotas and the audit log.

-- Tenant roles have no business here.
DO $$ BEGIN
  EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END $$;

CREATE TABLE tenants (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug          text NOT NULL UNIQUE,
    name          text NOT NULL,
    tier          text NOT NULL,
    isolation     text NOT NULL CHECK (isolation IN ('pooled', 'siloed')),
    status        text NOT NULL DEFAULT 'provisioning'
                  CHECK (status IN ('provisioning', 'active', 'suspended', 'deleting', 'deleted')),
    database_name text NOT NULL,
    role_name     text NOT NULL,
    owner_email   text NOT NULL,
    owner_name    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    activated_at  timestamptz
);

CREATE INDEX tenants_status ON tenants (status);

-- One row per completed provisioning step: a re-run skips what is here.
CREATE TABLE provisioning_journal (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    step         smallint NOT NULL CHECK (step BETWEEN 1 AND 7),
    name         text NOT NULL,
    duration_ms  integer NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, step)
);

CREATE TABLE quotas (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    resource    text NOT NULL,
    limit_value bigint NOT NULL CHECK (limit_value >= 0),
    source      text NOT NULL DEFAULT 'tier' CHECK (source IN ('tier', 'override')),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, resource)
);

-- Append-only: no foreign key, so that the history of a purged tenant stays.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    tenant_id   uuid,
    slug        text,
    from_status text,
    to_status   text,
    details     jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_slug_at ON audit_log (slug, at);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END $$;

CREATE TRIGGER audit_log_append_only
  BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
