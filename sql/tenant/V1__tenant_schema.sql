-- The tenant schema, for the shared pooled database and every siloed database alike.
-- Every table carries tenant_id and is guarded by forced row-level security: a session that
-- has not set app.tenant_id (inside its transaction) sees no rows and can write none.
-- Composite foreign keys keep a row from pointing at another tenant's row.

CREATE TABLE users (
    id            uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    email         text NOT NULL,
    password_hash text NOT NULL,
    full_name     text,
    role          text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, email),
    UNIQUE (tenant_id, id)
);

CREATE TABLE applications (
    id          uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    name        text NOT NULL,
    description text,
    sandbox_id  text,
    status      text NOT NULL DEFAULT 'active',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX applications_tenant_user ON applications (tenant_id, user_id);

CREATE TABLE deployments (
    id             uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    application_id uuid NOT NULL,
    version        text NOT NULL,
    status         text NOT NULL DEFAULT 'pending',
    deployed_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, application_id) REFERENCES applications (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX deployments_tenant_application ON deployments (tenant_id, application_id);

CREATE TABLE api_keys (
    id           uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    user_id      uuid NOT NULL,
    key_hash     text NOT NULL UNIQUE,
    name         text,
    last_used_at timestamptz,
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX api_keys_tenant_user ON api_keys (tenant_id, user_id);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['users', 'applications', 'deployments', 'api_keys'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
      'CREATE POLICY tenant_isolation ON %I
         USING (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid)
         WITH CHECK (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid)', t);
  END LOOP;
END $$;
