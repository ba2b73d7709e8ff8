#!/bin/sh
# An after_provision hook (seed 001's "Notify: welcome email"): writes the welcome message
# for a new tenant's owner into a spool directory, from which the mail system sends it.
#
#   [hooks]
#   after_provision = ["sh hooks/welcome.sh /var/spool/tenantctl/welcome"]
#
# Idempotent, as every hook must be: one message per tenant (its id, so a slug purged and
# provisioned again is welcomed again), written to a temporary file and renamed into place;
# a run that finds the message leaves it alone, so a retried provisioning never mails twice.
# tenantctl checked every value used here (slug, tier, email: no spaces, no control
# characters), so none can add a header.
set -eu
spool=${1:?usage: welcome.sh SPOOL_DIR}
mkdir -p "$spool"
message="$spool/$TENANTCTL_TENANT_ID.eml"
[ -e "$message" ] && exit 0
tmp="$spool/.$TENANTCTL_TENANT_ID.$$.tmp"
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<MESSAGE
To: $TENANTCTL_OWNER_EMAIL
Subject: Welcome to $TENANTCTL_SLUG
X-Tenant-Id: $TENANTCTL_TENANT_ID

Your workspace $TENANTCTL_SLUG is ready on the $TENANTCTL_TIER plan.
Sign in as $TENANTCTL_OWNER_EMAIL with the temporary password your administrator gave you.
MESSAGE
mv "$tmp" "$message"
trap - EXIT
