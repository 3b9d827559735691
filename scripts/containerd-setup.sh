#!/usr/bin/env bash
# Sets up a private containerd for Rafter's node agent and its tests, all under DIR:
#
#   DIR/config.toml          containerd config (own root/state/socket, cgroupfs, CNI)
#   DIR/net.d/10-podnet.conflist   bridge + host-local + portmap for the pod CIDR
#   DIR/containerd.sock      the CRI/containerd socket (DIR/containerd.pid, DIR/containerd.log)
#   DIR/images/*.tar         docker.io/local/{busybox,pause}:1, imported into namespace k8s.io
#   DIR/certs.d/<host>/hosts.toml  per-registry settings (CA, mirrors) CRI pulls read at each
#                            pull (containerd's registry config_path; the node agent writes
#                            them from its --registries-config)
#
# Installs the Debian packages it needs when missing, starts containerd in the background
# unless one already answers on DIR/containerd.sock, waits until it answers and imports the
# images. Safe to run again. Prints the socket path as its last line, so
#   export RAFTER_CONTAINERD_SOCK=$(scripts/containerd-setup.sh /tmp/rafter-containerd | tail -1)
# works. Environment: RAFTER_POD_CIDR (default 10.88.0.0/16), RAFTER_CNI_BRIDGE (rafter0).
# RAFTER_CNI_TEMPLATE=1 writes no conflist but a CNI conf template (DIR/cni-template.tmpl,
# containerd's conf_template): the pod network then starts when a node agent tells
# containerd its node's pod CIDR (CRI UpdateRuntimeConfig), and takes that range. Only the
# first CIDR told counts: containerd renders the template once, while no conflist exists.
# See shared/RUNTIME-NOTES.md for why each setting is what it is.
#
# Usage: scripts/containerd-setup.sh DIR        (stop with: kill "$(cat DIR/containerd.pid)")
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
mkdir -p "$1"
dir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
sock="$dir/containerd.sock"
pod_cidr=${RAFTER_POD_CIDR:-10.88.0.0/16}
bridge=${RAFTER_CNI_BRIDGE:-rafter0}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { echo "containerd-setup: $*" >&2; }

# --- packages ----------------------------------------------------------------------------
# docker-registry (the distribution registry), skopeo and apache2-utils (htpasswd) are for the
# tests: they start a private registry on loopback and push the local images into it.
packages=(containerd runc containernetworking-plugins iptables iproute2 busybox-static
    docker-registry skopeo apache2-utils)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -ne 0 ]; then
    log "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

answers() { ctr -a "$sock" version >/dev/null 2>&1; }

# --- config ------------------------------------------------------------------------------
mkdir -p "$dir"/{root,state,runc,opt,net.d,cni-ipam,images,certs.d}

# The pod CIDR's first address is the bridge's gateway (a.b.c.1 for a /16 or /24).
gateway=$(echo "${pod_cidr%/*}" | awk -F. '{ printf "%s.%s.%s.%d", $1, $2, $3, $4 + 1 }')

# write_conflist FILE RANGE: the pod network (bridge, host-local IPAM over RANGE, a JSON
# range object, and portmap) as a CNI conflist in FILE.
write_conflist() {
    cat >"$1" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "rafter-podnet",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni-ipam",
        "ranges": [[$2]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

conf_template=""
if [ "${RAFTER_CNI_TEMPLATE:-}" = 1 ]; then
    # containerd fills in {{.PodCIDR}}; host-local takes the range's first address as gateway.
    conf_template="$dir/cni-template.tmpl"
    rm -f "$dir/net.d/10-podnet.conflist"
    write_conflist "$conf_template" '{ "subnet": "{{.PodCIDR}}" }'
else
    write_conflist "$dir/net.d/10-podnet.conflist" "{ \"subnet\": \"$pod_cidr\", \"gateway\": \"$gateway\" }"
fi

# Only what differs from `containerd config default`; containerd fills in the rest.
cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/local/pause:1"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/net.d"
    max_conf_num = 1
    conf_template = "$conf_template"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/runc"
EOF

# --- start -------------------------------------------------------------------------------
if answers; then
    log "containerd already answers on $sock"
else
    if [ -f "$dir/containerd.pid" ] && kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null; then
        log "containerd (pid $(cat "$dir/containerd.pid")) is starting; waiting"
    else
        rm -f "$sock" "$sock.ttrpc"
        log "starting containerd on $sock (log: $dir/containerd.log)"
        # setsid: its own session, so it outlives this script and the caller's job control.
        setsid containerd --config "$dir/config.toml" </dev/null >>"$dir/containerd.log" 2>&1 &
        echo $! >"$dir/containerd.pid"
    fi
    for _ in $(seq 1 300); do
        answers && break
        sleep 0.1
    done
    if ! answers; then
        log "containerd did not answer on $sock within 30 s; last log lines:"
        tail -20 "$dir/containerd.log" >&2 || true
        exit 1
    fi
fi

# --- bridge netfilter ----------------------------------------------------------------------
# The node proxy DNATs Service traffic; replies bridged between two pods must still pass the
# host's connection tracking to be un-DNATed (as kube-proxy needs). Often built in.
if ! [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    modprobe br_netfilter 2>/dev/null || true
fi
if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables)" = 1 ] ||
        echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
else
    log "br_netfilter is not available: a pod reaching another pod of its bridge through a ClusterIP will fail"
fi

# --- images ------------------------------------------------------------------------------
if ! [ -f "$dir/images/busybox.tar" ] || ! [ -f "$dir/images/pause.tar" ]; then
    bash "$here/build-images.sh" "$dir/images" >&2
fi
for image in busybox pause; do
    if ! ctr -a "$sock" -n k8s.io images ls -q | grep -qx "docker.io/local/$image:1"; then
        ctr -a "$sock" -n k8s.io images import "$dir/images/$image.tar" >&2
    fi
done
log "ready: images $(ctr -a "$sock" -n k8s.io images ls -q | grep -c '^docker.io/local/') imported"
echo "$sock"
