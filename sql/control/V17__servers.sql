-- The fleet (issue 11): the PostgreSQL servers that hold tenant databases, and each tenant's.
--
-- `url` is a libpq key=value string *without a password* (tenantctl refuses one that carries a
-- password before it gets here; the CHECK is the backstop): passwords come from ~/.pgpass /
-- PGPASSFILE or the server's section of tenantctl.toml, never from this table. The control
-- database's own server has no URL (`control`): it is reached through the connection tenantctl
-- is configured with, whatever form that takes (flag, TENANTCTL_DATABASE_URL, PG* variables,
-- config file, the local cluster), so it can never go stale here.
--
-- `capacity` is how many siloed tenants (databases) the server may hold, deleted ones not yet
-- purged included: their databases are still there. Pooled tenants are rows in the server's
-- pooled database and do not count against it. `tiers` NULL takes every tier; `pooled` says
-- whether the server has a pooled database for pooled tenants; a `draining` server takes no new
-- tenant. `region` is for placement by region (issue 16), unused so far. `system_id` is
-- PostgreSQL's system identifier (`pg_control_system()`), read when the server is added: the
-- same cluster registered twice (or a replica of one) is refused by it.
CREATE TABLE servers (
    name       text PRIMARY KEY
               CHECK (name ~ '^[a-z][a-z0-9-]{0,38}[a-z0-9]$' AND name NOT LIKE '%--%'),
    url        text CHECK (url !~ '(^|\s)password\s*='),
    control    boolean NOT NULL DEFAULT false,
    capacity   integer NOT NULL CHECK (capacity BETWEEN 0 AND 1000000),
    tiers      text[] CHECK (tiers IS NULL OR cardinality(tiers) > 0),
    pooled     boolean NOT NULL DEFAULT false,
    draining   boolean NOT NULL DEFAULT false,
    region     text,
    system_id  text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (control = (url IS NULL))
);
CREATE UNIQUE INDEX servers_one_control ON servers (control) WHERE control;
CREATE UNIQUE INDEX servers_system_id ON servers (system_id);

-- The control database's own server, where every existing tenant lives. Its capacity is the
-- default a new server gets (2,000 databases: ~16 GB and a few per cent of a core of idle
-- autovacuum, see POSTGRES-NOTES), or what it already holds if that is more.
INSERT INTO servers (name, url, control, capacity, pooled)
SELECT 'main', NULL, true,
       GREATEST(2000, (SELECT count(*) FROM tenants WHERE isolation = 'siloed')), true;

-- Every existing tenant is on the control database's own server; a row written without a
-- server (an older tenantctl during an upgrade, a fixture) lands there too, as it always did.
ALTER TABLE tenants ADD COLUMN server text NOT NULL DEFAULT 'main' REFERENCES servers (name);
CREATE INDEX tenants_server ON tenants (server, isolation);

-- A database name is unique per server, not across the fleet (every pooled server has its own
-- `<prefix>pooled`, and a move creates a tenant's database on its target under the same name):
-- a claim names its server.
ALTER TABLE database_claims ADD COLUMN server text NOT NULL DEFAULT 'main' REFERENCES servers (name);
ALTER TABLE database_claims DROP CONSTRAINT database_claims_pkey;
ALTER TABLE database_claims ADD PRIMARY KEY (server, database_name);
