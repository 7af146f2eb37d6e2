#!/usr/bin/env bash
# Shows that a step's memory does not grow with its number of requests:
# the peak RSS of a download of SMALL requests and of LARGE requests
# against the loopback emulator, and their ratio, which must stay at or
# under 1.1. Only 127.0.0.1 is contacted.
#
#   bench/memory.sh [small] [large] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL=${1:-200000}
LARGE=${2:-3000000}
C=${3:-50}
PORT=${PORT:-18751}
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need /usr/bin/time time
need jq jq
need bc bc

out=bench/out
mkdir -p "$out"
go build -o "$out/teckenrun" .
"$out/teckenrun" emulator -listen "127.0.0.1:$PORT" -latency 0 >/dev/null &
emu=$!
trap 'kill $emu 2>/dev/null' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/__lbheartbeat__" && break; sleep 0.1; done

# One CSV for both runs: a hit, a miss and a private-bucket miss, cycled
# through until max_requests.
cat >"$out/mem.csv" <<CSV
URI,STATUS CODE,PRIVATE,COUNT
/bucket/v1/xul.pdb/4E3BE34097B5DB19CE7F4775A31FEB0F1/xul.sym,200,false,3
/bucket/v1/nope.pdb/00000000000000000000000000000000A/nope.sym,404,false,1
/bucket/v1/secret.pdb/11111111111111111111111111111111A/secret.sym,403,true,1
CSV

measure() { # requests -> prints "rss_kib requests"
	cat >"$out/mem.yaml" <<PLAN
host: http://127.0.0.1:$PORT
steps:
  - download: {csv: mem.csv, concurrency: $C, max_requests: $1}
PLAN
	/usr/bin/time -f "%M" -o "$out/mem-time.txt" "$out/teckenrun" -quiet -format json "$out/mem.yaml" >"$out/mem.json"
	echo "$(cat "$out/mem-time.txt") $(jq '.steps[0].metrics.requests' "$out/mem.json")"
}

read -r small_rss small_n < <(measure "$SMALL")
echo "download of $small_n requests: peak RSS $((small_rss / 1024)) MiB"
read -r large_rss large_n < <(measure "$LARGE")
echo "download of $large_n requests: peak RSS $((large_rss / 1024)) MiB"
ratio=$(echo "$large_rss / $small_rss" | bc -l)
printf 'ratio large/small: %.3f (must be <= 1.1)\n' "$ratio"
if (($(echo "$ratio > 1.1" | bc -l))); then
	echo "FAIL: memory grows with the number of requests"
	exit 1
fi
