#!/usr/bin/env bash
# Installs the Debian packages Rafter builds and runs with, only those missing.
# protoc generates the API code, librocksdb-dev + libclang-dev let the store link
# Debian's RocksDB instead of building it from source. nftables gives the node agent's
# Service proxy its `nft` (and the proxy's tests the kernel rules they check). faketime
# (libfaketime) runs a chaos test's master and agent with their clocks a minute off, and
# e2fsprogs makes the small filesystem a chaos test fills up.
#
# `install-deps.sh bench` (`make bench-deps`) also installs what the benchmarks compare
# with and profile by: etcd-server (`bench store` runs /usr/bin/etcd side by side),
# linux-perf and libjemalloc-dev (its `jeprof`, for `--features jemalloc-profiling`).
set -euo pipefail

packages=(protobuf-compiler librocksdb-dev libclang-dev nftables faketime e2fsprogs)
if [ "${1:-}" = "bench" ]; then
    packages+=(etcd-server linux-perf libjemalloc-dev)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
