#!/usr/bin/env bash
# Benchmarks the symbolicate step against the emulator on loopback, and
# compares the client's CPU per request with the emulator's.
#
#   bench/symbolicate.sh [duration] [concurrency] [batch_size]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
C=${2:-8}
B=${3:-5}
PORT=${PORT:-18741}
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need /usr/bin/time time
need jq jq
need bc bc

out=bench/out
mkdir -p "$out"
go build -o "$out/teckenrun" .
"$out/teckenrun" emulator -listen "127.0.0.1:$PORT" >/dev/null &
emu=$!
trap 'kill $emu 2>/dev/null' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/__lbheartbeat__" && break; sleep 0.1; done

# The stack files are made first, so that only symbolicate is measured.
cat >"$out/make-stacks.yaml" <<PLAN
host: embedded
seed: 1
steps:
  - make-stacks: {from: embedded, count: 2000, out_dir: stacks}
PLAN
"$out/teckenrun" -format json "$out/make-stacks.yaml" >/dev/null
cat >"$out/symbolicate.yaml" <<PLAN
host: http://127.0.0.1:$PORT
seed: 1
steps:
  - symbolicate: {stacks_dir: stacks, api: v5, batch_size: $B, concurrency: $C, duration: $DURATION}
PLAN
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks $emu)
/usr/bin/time -f "%U %S %M" -o "$out/time.txt" "$out/teckenrun" -format json "$out/symbolicate.yaml" >"$out/symbolicate.json"
after=$(ticks $emu)
read -r user sys rss <"$out/time.txt"
n=$(jq '.steps[0].metrics.requests' "$out/symbolicate.json")
echo "requests: $n in $DURATION ($(jq '.steps[0].metrics.rate_per_s | floor' "$out/symbolicate.json") req/s), jobs $(jq '.steps[0].jobs' "$out/symbolicate.json"), invalid $(jq '.steps[0].invalid_responses' "$out/symbolicate.json")"
client=$(echo "($user + $sys) * 1000000 / $n" | bc -l)
server=$(echo "($after - $before) / $hz * 1000000 / $n" | bc -l)
printf 'client CPU per request:   %.0f µs (peak RSS %d MiB)\n' "$client" $((rss / 1024))
printf 'emulator CPU per request: %.0f µs\n' "$server"
printf 'client/emulator: %.2f\n' "$(echo "$client / $server" | bc -l)"
