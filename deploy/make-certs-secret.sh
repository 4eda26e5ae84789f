#!/usr/bin/env bash
# make-certs-secret.sh: the cluster's credentials for troved's DaemonSet, as the
# Secret troved-certs (namespace trove) that deploy/kubernetes/40-daemonset.yaml
# mounts: ca.crt, and NAME.crt and NAME.key for every Kubernetes node NAME (troved
# -certs-dir with -name NAME picks its pair).
#
#   deploy/make-certs-secret.sh CA_DIR OUT_DIR                # every node kubectl lists
#   deploy/make-certs-secret.sh CA_DIR OUT_DIR NAME=IP ...    # these nodes (no kubectl)
#
# CA_DIR holds the cluster CA (made there by `trove cert create-ca` if missing; its
# ca.key never goes into the Secret). Each node's certificate names the node's
# InternalIP, the address troved listens on with hostNetwork. OUT_DIR gets the flat
# files and secret.yaml: kubectl apply -f OUT_DIR/secret.yaml. For a node added
# later, run it again with a new OUT_DIR (existing certificates are never
# overwritten) and apply the new secret.yaml. $TROVE is the trove CLI (default: trove).
set -euo pipefail
TROVE=${TROVE:-trove}
if [ $# -lt 2 ]; then
	sed -n '2,15p' "$0" >&2
	exit 2
fi
ca=$1 out=$2
shift 2
nodes=("$@")
if [ ${#nodes[@]} -eq 0 ]; then
	mapfile -t nodes < <(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')
fi
if [ ${#nodes[@]} -eq 0 ]; then
	echo "make-certs-secret.sh: no nodes: give NAME=IP arguments, or a kubectl that lists them" >&2
	exit 1
fi
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
	echo "make-certs-secret.sh: $out is not empty: choose a new directory (credentials are never overwritten)" >&2
	exit 1
fi
[ -f "$ca/ca.crt" ] || "$TROVE" cert create-ca -dir "$ca"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
chmod 700 "$out"
cp "$ca/ca.crt" "$out/ca.crt"
for n in "${nodes[@]}"; do
	name=${n%%=*} ip=${n#*=}
	if [ -z "$name" ] || [ -z "$ip" ] || [ "$name" = "$n" ]; then
		echo "make-certs-secret.sh: $n: want NAME=IP" >&2
		exit 2
	fi
	"$TROVE" cert create-node -ca-dir "$ca" -dir "$work/$name" -name "$name" -host "$ip" >/dev/null
	cp "$work/$name/node.crt" "$out/$name.crt"
	cp "$work/$name/node.key" "$out/$name.key"
done
{
	printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: troved-certs\n  namespace: trove\n  labels:\n    app.kubernetes.io/name: troved\n    app.kubernetes.io/part-of: trove\ntype: Opaque\ndata:\n'
	for f in "$out"/ca.crt "$out"/*.crt "$out"/*.key; do
		base=$(basename "$f")
		[ "$base" = secret.yaml ] && continue
		printf '  %s: %s\n' "$base" "$(base64 -w0 < "$f")"
	done | sort -u
} > "$out/secret.yaml"
chmod 600 "$out/secret.yaml"
echo "wrote $out/secret.yaml (${#nodes[@]} nodes): kubectl apply -f $out/secret.yaml"
