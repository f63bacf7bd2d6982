#!/usr/bin/env bash
# The long run of the fault harness: a gateway and three nodes (real processes, loopback) under load while nodes
# and the gateway are killed with SIGKILL and nodes are paused with SIGSTOP, round after round; then every
# acknowledged write is checked and each register's history is checked for linearizability.
#
#   scripts/chaos.sh                      # 21 rounds of 5 s (7 of each fault)
#   scripts/chaos.sh --rounds 60 --round-seconds 8 --clients 16 --json chaos.json
#
# Extra arguments go to durable-chaos (`durable-chaos --help`). Exits non-zero if anything was lost.
set -euo pipefail
cd "$(dirname "$0")/.."
make deps >/dev/null
swift build --product durable
swift build --product durable-chaos
exec .build/debug/durable-chaos --rounds 21 --round-seconds 5 "$@"
