-- Feature entitlements: one row per (tenant, feature) that the tenant's tier includes or that
-- a per-tenant override names. `in_tier` is the tier's part, recomputed by set-tier;
-- `override` is the operator's word (`features grant|revoke`, `provision --feature`) and
-- survives tier changes. The tenant has a feature when it is granted, or in its tier and not
-- revoked. Feature names follow the rule of src/feature.rs.
CREATE TABLE feature_entitlements (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    feature    text NOT NULL
               CHECK (length(feature) <= 40 AND feature ~ '^[a-z]([-_]?[a-z0-9])*$'),
    in_tier    boolean NOT NULL DEFAULT false,
    override   text CHECK (override IN ('grant', 'revoke')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, feature),
    -- A row that neither the tier nor an override names is deleted, not kept.
    CHECK (in_tier OR override IS NOT NULL)
);
