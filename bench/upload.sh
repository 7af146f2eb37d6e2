#!/usr/bin/env bash
# Benchmarks make-zips and the upload step on loopback: a synthetic zip of
# SIZE (default 1gb) is written by make-zips, then uploaded by curl -F and
# by teckenrun to the same emulator; peak RSS and throughput are printed.
#
#   bench/upload.sh [size]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1gb}
PORT=${PORT:-18751}
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need /usr/bin/time time
need jq jq
need bc bc
need curl curl

out=bench/out
rm -rf "$out/zips" "$out/zips-small"
mkdir -p "$out/zips" "$out/zips-small"
go build -o "$out/teckenrun" .
"$out/teckenrun" emulator -listen "127.0.0.1:$PORT" -discard-uploads >/dev/null &
emu=$!
trap 'kill $emu 2>/dev/null' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/__lbheartbeat__" && break; sleep 0.1; done
export TECKEN_BENCH_TOKEN=e2e0000000000000000000000000000e # the emulator's own token

make_zips() { # dir size
	cat >"$out/make-zips.yaml" <<PLAN
host: embedded
seed: 1
steps:
  - make-zips: {source: synthetic, save_dir: $1, zip_size: $2, sym_size: 8mb}
PLAN
	/usr/bin/time -f "%M" -o "$out/time.txt" "$out/teckenrun" -format json "$out/make-zips.yaml" >"$out/make-zips.json"
	echo "make-zips $2: $(jq -r '.steps[0].zips[0].bytes' "$out/make-zips.json") bytes at $(jq -r '.steps[0].zip_bytes_per_s / 1048576 | floor' "$out/make-zips.json") MiB/s, peak RSS $(($(cat "$out/time.txt") / 1024)) MiB"
}
make_zips zips-small 64mb
make_zips zips "$SIZE"
zip=$(ls "$out"/zips/*.zip)
bytes=$(stat -c %s "$zip")

curl_bps=$(curl -s -o /dev/null -w '%{speed_upload}' -H "Auth-Token: $TECKEN_BENCH_TOKEN" \
	-F "$(basename "$zip")=@$zip" "http://127.0.0.1:$PORT/upload/")
echo "curl -F: $(echo "$curl_bps / 1048576" | bc -l | xargs printf '%.1f') MiB/s"

cat >"$out/upload.yaml" <<PLAN
host: http://127.0.0.1:$PORT
auth_token_env: TECKEN_BENCH_TOKEN
steps:
  - upload: {zips_dir: zips, max_size: 4gb, timeout: 10m}
PLAN
/usr/bin/time -f "%M" -o "$out/time.txt" "$out/teckenrun" -format json "$out/upload.yaml" >"$out/upload.json"
secs=$(jq '.steps[0].uploads[0].duration_s' "$out/upload.json")
status=$(jq '.steps[0].uploads[0].status' "$out/upload.json")
tr_bps=$(echo "$bytes / $secs" | bc -l)
echo "teckenrun: $(echo "$tr_bps / 1048576" | bc -l | xargs printf '%.1f') MiB/s (status $status), peak RSS $(($(cat "$out/time.txt") / 1024)) MiB"
echo "ratio teckenrun/curl: $(echo "$tr_bps / $curl_bps" | bc -l | xargs printf '%.2f')"
