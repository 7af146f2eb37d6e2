#!/usr/bin/env bash
# Benchmarks the download step against hey and wrk on the same loopback
# server (requests/s and client CPU per request, side by side), and the
# loading of a 1,000,000-row CSV. The server is nginx answering Tecken's
# 302 (bench/server.sh), so that the clients, not the server, are measured;
# SERVER=emulator uses teckenrun's emulator instead. The goal is at most
# 20 µs of client CPU per request at concurrency 50 against nginx. Only
# 127.0.0.1 is contacted.
#
#   bench/download.sh [requests] [concurrency] [wrk seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
C=${2:-50}
WRK_D=${3:-10}
PORT=${PORT:-18731}
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need hey hey
need wrk wrk
need /usr/bin/time time
need jq jq
need bc bc

out=bench/out
mkdir -p "$out"
go build -o "$out/teckenrun" .
. bench/server.sh
start_server "$PORT"

key=xul.pdb/4E3BE34097B5DB19CE7F4775A31FEB0F1/xul.sym # a 302 (in the emulator's embedded store too)
printf 'URI,STATUS CODE,PRIVATE,COUNT\n/bucket/v1/%s,200,false,%d\n' "$key" "$N" >"$out/one.csv"
cat >"$out/download.yaml" <<PLAN
host: http://127.0.0.1:$PORT
steps:
  - download: {csv: one.csv, concurrency: $C}
PLAN

us_per() { echo "($1 + $2) * 1000000 / $3" | bc -l | xargs printf '%.1f'; }
echo "server: ${SERVER:-nginx}; load: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores shared with the server; other processes skew the figures)"

echo "== hey: $N requests, concurrency $C"
/usr/bin/time -f "%U %S" -o "$out/time.txt" hey -n "$N" -c "$C" -disable-redirects -H "Debug: true" "http://127.0.0.1:$PORT/$key" >"$out/hey.txt"
hey_rps=$(awk '/Requests\/sec/ {print $2}' "$out/hey.txt")
read -r user sys <"$out/time.txt"
hey_cpu=$(us_per "$user" "$sys" "$N")
echo "hey req/s: $hey_rps; CPU per request: $hey_cpu µs"

echo "== wrk: ${WRK_D}s, $C connections, 2 threads"
/usr/bin/time -f "%U %S" -o "$out/time.txt" wrk -t 2 -c "$C" -d "${WRK_D}s" -H "Debug: true" "http://127.0.0.1:$PORT/$key" >"$out/wrk.txt"
wrk_n=$(awk '/requests in/ {print $1}' "$out/wrk.txt")
wrk_rps=$(awk '/Requests\/sec/ {print $2}' "$out/wrk.txt")
read -r user sys <"$out/time.txt"
wrk_cpu=$(us_per "$user" "$sys" "$wrk_n")
echo "wrk req/s: $wrk_rps ($wrk_n requests); CPU per request: $wrk_cpu µs"

echo "== teckenrun: $N requests, concurrency $C"
/usr/bin/time -f "%U %S %M" -o "$out/time.txt" "$out/teckenrun" -quiet -format json "$out/download.yaml" >"$out/report.json"
tr_rps=$(jq '.steps[0].metrics.rate_per_s' "$out/report.json")
read -r user sys rss <"$out/time.txt"
echo "teckenrun req/s: $tr_rps (requests $(jq '.steps[0].metrics.requests' "$out/report.json"), errors $(jq '.steps[0].metrics.errors' "$out/report.json"))"
tr_cpu=$(us_per "$user" "$sys" "$N")
echo "teckenrun CPU per request: $tr_cpu µs; peak RSS $((rss / 1024)) MiB"
echo "req/s ratio teckenrun/hey: $(echo "$tr_rps / $hey_rps" | bc -l | xargs printf '%.2f')"
echo "CPU per request: teckenrun $tr_cpu µs, hey $hey_cpu µs, wrk $wrk_cpu µs (teckenrun/hey $(echo "$tr_cpu / $hey_cpu" | bc -l | xargs printf '%.2f'); goal: teckenrun ≤ 20 µs against nginx)"

echo "== loading a 1,000,000-row CSV"
awk 'BEGIN { print "URI,STATUS CODE,PRIVATE,COUNT";
  for (i = 0; i < 1000000; i++) printf "/org.mozilla.crash-stats.symbols-public/v1/mod%d.pdb/%032X1/mod%d.sym,%d,false,%d\n", i, i, i, (i % 3 ? 200 : 404), 1 + i % 3 }' >"$out/big.csv"
cat >"$out/big.yaml" <<PLAN
host: http://127.0.0.1:$PORT
steps:
  - download: {csv: big.csv, max_requests: 1, concurrency: 1}
PLAN
/usr/bin/time -f "%e %M" -o "$out/time.txt" "$out/teckenrun" -format json "$out/big.yaml" >"$out/big.json"
read -r wall rss <"$out/time.txt"
echo "1M rows ($(jq '.steps[0].rows' "$out/big.json") usable, 2M jobs): ${wall}s wall, peak RSS $((rss / 1024)) MiB"
