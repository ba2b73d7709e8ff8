-- Intermediate statuses: each lifecycle command writes one before it touches the data plane and
-- replaces it when done, so that the status never claims a tenant is more closed than it is.
ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_status_check CHECK (status IN (
    'provisioning', 'active', 'suspending', 'suspended', 'resuming',
    'deprovisioning', 'deleted', 'restoring', 'deleting'));
