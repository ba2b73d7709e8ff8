-- Billing: one gate row per period, invoices exactly once per tenant and period, their lines,
-- and the usage each invoice accounted for (so that usage arriving later is billed as an
-- adjustment, never lost and never billed twice).

CREATE TABLE billing_runs (
    period       date PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    actor        text NOT NULL,
    invoices     integer,
    total_cents  bigint
);

-- No foreign key to tenants: invoices are financial records and outlive a purge.
CREATE TABLE invoices (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    slug         text NOT NULL,
    period       date NOT NULL,
    currency     text NOT NULL,
    total_cents  bigint NOT NULL,
    upgrade_hint jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, period)
);
CREATE INDEX invoices_period_slug ON invoices (period, slug);

CREATE TABLE invoice_lines (
    invoice_id         bigint NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    line_no            integer NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('base', 'overage', 'adjustment')),
    description        text NOT NULL,
    resource           text,
    tier               text NOT NULL,
    quantity           bigint NOT NULL,
    unit_price_micros  bigint NOT NULL,
    amount_cents       bigint NOT NULL,
    usage_period       date,
    PRIMARY KEY (invoice_id, line_no)
);

-- How much metered usage of (resource, usage_period) an invoice accounted for.
CREATE TABLE billed_usage (
    invoice_id   bigint NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    tenant_id    uuid NOT NULL,
    resource     text NOT NULL,
    usage_period date NOT NULL,
    quantity     bigint NOT NULL,
    -- The tier whose limit and price applied to that period's usage.
    tier         text NOT NULL,
    PRIMARY KEY (invoice_id, resource, usage_period)
);
CREATE INDEX billed_usage_tenant ON billed_usage (tenant_id, resource, usage_period);

CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);
