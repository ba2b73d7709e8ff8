#!/bin/sh
# An after_provision hook (seed 001's "Deploy App: Kubernetes namespace"): the tenant's
# namespace, labelled with its slug and tier. `create --dry-run=client -o yaml | apply` is
# idempotent where `kubectl create namespace` alone fails on the second run; kubectl reads its
# cluster and credentials from its own kubeconfig (hooks never receive tenantctl's secrets).
#
#   [hooks]
#   after_provision = ["sh hooks/namespace.sh"]
set -eu
namespace="tenant-$TENANTCTL_SLUG"
kubectl create namespace "$namespace" --dry-run=client -o yaml \
  | kubectl label --local -f - -o yaml tenant="$TENANTCTL_SLUG" tier="$TENANTCTL_TIER" \
  | kubectl apply -f -
