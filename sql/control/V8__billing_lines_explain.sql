-- Invoice lines that explain themselves, and coverage that includes zero.
--
-- `included` (the tier's limit), `month_usage` (the month's usage the line accounts for) and
-- `late_units` (adjustment lines: units recorded after the month's invoice) let finance check
-- an overage or adjustment line from the line alone. NULL on base lines and on lines written
-- before this migration.
ALTER TABLE invoice_lines
    ADD COLUMN included    bigint,
    ADD COLUMN month_usage bigint,
    ADD COLUMN late_units  bigint;

-- Invoices now record what they covered of every metered resource of their period, zero
-- included, so that usage recorded after the invoice in a month that had none becomes an
-- adjustment (it was lost before). Invoices written before this migration get their zero rows
-- here; the tier is the one their other rows for the period name, else the tier of their last
-- base line (the tier of the month's last billed day unless the tier changed back and forth).
INSERT INTO billed_usage (invoice_id, tenant_id, resource, usage_period, quantity, tier)
SELECT i.id, i.tenant_id, r.resource, i.period, 0,
       coalesce((SELECT b.tier FROM billed_usage b
                 WHERE b.invoice_id = i.id AND b.usage_period = i.period LIMIT 1),
                (SELECT l.tier FROM invoice_lines l
                 WHERE l.invoice_id = i.id AND l.kind = 'base' ORDER BY l.line_no DESC LIMIT 1))
FROM invoices i
CROSS JOIN (VALUES ('sandboxes'), ('compute_hours'), ('api_requests')) AS r (resource)
WHERE EXISTS (SELECT 1 FROM invoice_lines l WHERE l.invoice_id = i.id AND l.kind = 'base')
  AND NOT EXISTS (SELECT 1 FROM billed_usage b
                  WHERE b.tenant_id = i.tenant_id AND b.resource = r.resource
                    AND b.usage_period = i.period);
