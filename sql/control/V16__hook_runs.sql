-- The hooks that succeeded, per lifecycle run: a re-run of a command whose hook failed (or that
-- was killed between hooks) runs only the hooks that have no row here. A run is the status
-- change that put the tenant where it is when its hooks run, named by that change's audit entry
-- (`audit_log.id`): the `provision.start` entry while provisioning, the `suspend` entry after a
-- suspension, the entry of the current status before a purge. A hook is its position in its
-- event's list (from 1) and its command: an edited command counts as not yet run.
CREATE TABLE hook_runs (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    event        text NOT NULL
                 CHECK (event IN ('provision', 'suspend', 'resume', 'deprovision', 'restore', 'purge')),
    run          bigint NOT NULL,
    position     integer NOT NULL CHECK (position >= 1),
    command      text NOT NULL,
    duration_ms  integer NOT NULL,
    succeeded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event, run, position)
);
