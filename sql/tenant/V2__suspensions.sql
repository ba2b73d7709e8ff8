-- Suspension of pooled tenants, enforced by the row-level policies: a suspended tenant's rows
-- are invisible and unwritable even with its own context set. Written to be re-runnable.

CREATE TABLE IF NOT EXISTS tenant_suspensions (
    tenant_id uuid PRIMARY KEY,
    since     timestamptz NOT NULL DEFAULT now()
);

-- Like every table with tenant_id: a tenant's context sees (only) its own row, which is all the
-- policies below need; application roles get SELECT only.
ALTER TABLE tenant_suspensions ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_suspensions FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON tenant_suspensions;
CREATE POLICY tenant_isolation ON tenant_suspensions
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['users', 'applications', 'deployments', 'api_keys'] LOOP
    EXECUTE format(
      'ALTER POLICY tenant_isolation ON %1$I
         USING (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid
                AND NOT EXISTS (SELECT 1 FROM tenant_suspensions s WHERE s.tenant_id = %1$I.tenant_id))
         WITH CHECK (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid
                AND NOT EXISTS (SELECT 1 FROM tenant_suspensions s WHERE s.tenant_id = %1$I.tenant_id))', t);
  END LOOP;
END $$;
