#!/usr/bin/env bash
# Benchmarks the open model (a download step with `rate`) against vegeta on
# the same loopback server (nginx answering Tecken's 302, bench/server.sh;
# SERVER=emulator uses teckenrun's emulator): for each target rate, the achieved rate, the
# schedule lag's p99, the share of late requests, whether the step was
# saturated, its peak workers, its CPU per request and the TCP connections
# it opened; then, at twice the rate the machine sustains, checks that the
# step reports `saturated: true` with a peak RSS under 256 MB. Only
# 127.0.0.1 is contacted.
#
#   bench/rate.sh [seconds per target] [concurrency] [rates...]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-5}
C=${2:-50}
RATES=(2000 10000 20000)
if (($# > 2)); then RATES=("${@:3}"); fi
PORT=${PORT:-18761}
MAXW=$((10 * C)) # the default max_concurrency, and vegeta's -max-workers
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need /usr/bin/time time
need jq jq
need bc bc

out=bench/out
mkdir -p "$out"
go build -o "$out/teckenrun" .
# vegeta is built once here (not a dependency of teckenrun), so that no
# compilation runs during a measurement.
vegeta=
if GOBIN="$PWD/$out" go install github.com/tsenart/vegeta/v12@latest 2>"$out/vegeta-install.txt"; then
	vegeta=$out/vegeta
else
	echo "vegeta: the Go module proxy could not serve github.com/tsenart/vegeta/v12@latest; skipping the comparison:"
	sed 's/^/  /' "$out/vegeta-install.txt"
fi

. bench/server.sh
start_server "$PORT"

key=xul.pdb/4E3BE34097B5DB19CE7F4775A31FEB0F1/xul.sym # a 302 (in the emulator's embedded store too)
printf 'URI,STATUS CODE,PRIVATE,COUNT\n/bucket/v1/%s,200,false,1\n' "$key" >"$out/rate.csv"
printf 'GET http://127.0.0.1:%s/%s\nDebug: true\n' "$PORT" "$key" >"$out/vegeta-targets.txt"
echo "server: ${SERVER:-nginx}; load before: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores shared with the server; other processes skew the figures)"

# TCP connections opened on this machine (ActiveOpens): over a run, a
# client that keeps its connections alive opens about as many as it has
# workers (give or take other processes' connections).
opens() { awk '/^Tcp:/ && $2 ~ /^[0-9]+$/ {print $6}' /proc/net/snmp; }
us_per() { echo "($1 + $2) * 1000000 / $3" | bc -l | xargs printf '%.1f'; }

run() { # plan lines -> runs them; leaves the report in $out/rate.json, "user sys rss_kib" in $out/rate-time.txt
	printf 'host: http://127.0.0.1:%s\nsteps:\n  - download: {csv: rate.csv, concurrency: %s, %s}\n' "$PORT" "$C" "$1" >"$out/rate.yaml"
	o0=$(opens)
	/usr/bin/time -f "%U %S %M" -o "$out/rate-time.txt" "$out/teckenrun" -quiet -format json "$out/rate.yaml" >"$out/rate.json"
	opened=$(($(opens) - o0))
}

summary() { # target -> one line of the step's load metrics
	local m user sys rss n
	m=$(jq -c '.steps[0].metrics' "$out/rate.json")
	read -r user sys rss <"$out/rate-time.txt"
	n=$(jq '.requests' <<<"$m")
	jq -r --arg t "$1" --arg opened "$opened" --arg cpu "$(us_per "$user" "$sys" "$n")" --arg rss "$((rss / 1024))" \
		'"teckenrun \($t)/s: achieved \(.rate_per_s | round)/s (\(.rate_per_s / ($t | tonumber) * 100 | . * 10 | round / 10) %), " +
		 "lag p99 \(.schedule_lag.p99_s * 100000 | round / 100) ms, late \(.late_pct * 100 | round / 100) %, missed \(.missed), " +
		 "saturated \(.saturated), peak_workers \(.peak_workers), errors \(.errors), CPU \($cpu) µs/req, RSS \($rss) MiB, connections opened \($opened)"' <<<"$m"
}

for r in "${RATES[@]}"; do
	run "rate: $r, duration: ${D}s"
	summary "$r"
	if [[ -n $vegeta ]]; then
		o0=$(opens)
		/usr/bin/time -f "%U %S %M" -o "$out/vegeta-time.txt" "$vegeta" attack -rate "$r" -duration "${D}s" \
			-workers "$C" -max-workers "$MAXW" -redirects -1 -targets "$out/vegeta-targets.txt" >"$out/vegeta.bin"
		opened=$(($(opens) - o0))
		"$vegeta" report -type json "$out/vegeta.bin" >"$out/vegeta.json"
		read -r user sys rss <"$out/vegeta-time.txt"
		jq -r --arg t "$r" --arg opened "$opened" --arg cpu "$(us_per "$user" "$sys" "$(jq .requests "$out/vegeta.json")")" --arg rss "$((rss / 1024))" \
			'"vegeta    \($t)/s: achieved \(.rate | round)/s (\(.rate / ($t | tonumber) * 100 | . * 10 | round / 10) %), " +
			 "latency p99 \(.latencies["99th"] / 10000 | round / 100) ms, success \(.success * 100 | round) %, CPU \($cpu) µs/req, RSS \($rss) MiB, connections opened \($opened)"' "$out/vegeta.json"
	fi
done

# What the machine sustains: the closed model, as fast as C workers go.
run "duration: ${D}s"
sustained=$(jq '.steps[0].metrics.rate_per_s | round' "$out/rate.json")
over=$((2 * sustained))
echo "sustained (no rate, concurrency $C): $sustained/s; now a target of $over/s"
run "rate: $over, duration: ${D}s"
summary "$over"
read -r _ _ rss <"$out/rate-time.txt"
saturated=$(jq '.steps[0].metrics.saturated' "$out/rate.json")
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ $saturated != true ]] || ((rss * 1024 >= 256000000)); then
	echo "FAIL: at $over/s the step must report saturated: true (got $saturated) with peak RSS under 256 MB (got $((rss / 1024)) MiB)"
	exit 1
fi
echo "ok: saturated: true at $over/s, peak RSS $((rss / 1024)) MiB (< 256 MB)"
