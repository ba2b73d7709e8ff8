-- The tenant's effective feature entitlements, written by tenantctl on every change so that the
-- application reads them without the control database. Like every tenant table: tenant_id,
-- forced row-level security keyed on app.tenant_id, and a suspended pooled tenant's rows hidden
-- (tenant_suspensions, V2). Application roles get SELECT only. Written to be re-runnable.

CREATE TABLE IF NOT EXISTS tenant_features (
    tenant_id  uuid NOT NULL,
    feature    text NOT NULL
               CHECK (length(feature) <= 40 AND feature ~ '^[a-z]([-_]?[a-z0-9])*$'),
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, feature)
);

ALTER TABLE tenant_features ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_features FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_isolation ON tenant_features;
CREATE POLICY tenant_isolation ON tenant_features
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         AND NOT EXISTS (SELECT 1 FROM tenant_suspensions s WHERE s.tenant_id = tenant_features.tenant_id))
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         AND NOT EXISTS (SELECT 1 FROM tenant_suspensions s WHERE s.tenant_id = tenant_features.tenant_id));
