-- Issue 8 (§3, §4): whether a quota is hard is stored with its limit, and quantities are bounded.

-- Hard (usage past the limit is refused) or soft (billed as overage): stored with the tenant's
-- limit, so the limit that applies is the tenant's own whatever tier file a later command is
-- given. Provisioning (step 5) and set-tier write it from the tier.
ALTER TABLE quotas ADD COLUMN hard boolean;

-- Existing rows take the built-in tiers' meaning: `free` has no overage price (every limit
-- hard); `premium` and `enterprise` price every resource (every limit soft). Rows of other
-- tiers stay NULL and are resolved from the tier file a command is given (a file without the
-- tenant's tier is bad input), until set-tier stores them.
UPDATE quotas q SET hard = (t.tier = 'free')
FROM tenants t
WHERE t.id = q.tenant_id AND t.tier IN ('free', 'premium', 'enterprise');

-- The maximum of any quantity, limit or monthly total (tier::MAX_QUANTITY = 10^12). tenantctl
-- checks it before writing; these constraints are the backstop. NOT VALID: rows written before
-- the bound existed are kept as they are (and are refused only when they change).
ALTER TABLE usage_events ADD CONSTRAINT usage_events_quantity_max
    CHECK (quantity <= 1000000000000) NOT VALID;
ALTER TABLE usage_totals ADD CONSTRAINT usage_totals_quantity_max
    CHECK (quantity <= 1000000000000) NOT VALID;
ALTER TABLE quotas ADD CONSTRAINT quotas_limit_max
    CHECK (limit_value <= 1000000000000) NOT VALID;
