-- api_keys.key_hash is unique per tenant, not across tenants: in the shared pooled database a
-- global UNIQUE let one tenant learn, from a duplicate-key error, that another tenant holds a
-- hash. The index leads with tenant_id, as every index under RLS must. Written to be re-runnable.

ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_key_hash_key;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                 WHERE conrelid = 'api_keys'::regclass AND conname = 'api_keys_tenant_key_hash_key') THEN
    ALTER TABLE api_keys ADD CONSTRAINT api_keys_tenant_key_hash_key UNIQUE (tenant_id, key_hash);
  END IF;
END $$;
