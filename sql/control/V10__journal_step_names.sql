-- The provisioning journal keys each step by a stable name instead of its number: inserting a
-- step no longer changes what the journal of a half-provisioned tenant means. The numbers
-- journaled so far (1 to 7, the order tenantctl ran the steps in until now) become the names
-- of the same steps (`step::Step::as_str`); the range check becomes a check of the name's form,
-- so that a new step needs no migration.
ALTER TABLE provisioning_journal DROP CONSTRAINT provisioning_journal_step_check;

ALTER TABLE provisioning_journal
    ALTER COLUMN step TYPE text USING CASE step
        WHEN 1 THEN 'record_tenant'
        WHEN 2 THEN 'create_database'
        WHEN 3 THEN 'apply_schema'
        WHEN 4 THEN 'create_owner'
        WHEN 5 THEN 'seed_quotas'
        WHEN 6 THEN 'create_buckets'
        WHEN 7 THEN 'activate'
    END;

ALTER TABLE provisioning_journal
    ADD CONSTRAINT provisioning_journal_step_check CHECK (step ~ '^[a-z][a-z0-9_]{0,62}$');
