# Sourced by the benchmarks. start_server PORT starts the loopback server
# they measure against and stops it on exit: nginx (start_nginx), or with
# SERVER=emulator teckenrun's emulator ($out/teckenrun must be built).
# Only 127.0.0.1 is contacted.
start_server() {
	local port=$1
	if [[ ${SERVER:-nginx} == emulator ]]; then
		"$out/teckenrun" emulator -listen "127.0.0.1:$port" -latency 0 >/dev/null &
		SERVER_PID=$!
		for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/__lbheartbeat__" && break; sleep 0.1; done
	else
		start_nginx "$port"
		SERVER_PID=$NGINX_PID
	fi
	trap 'kill $SERVER_PID 2>/dev/null' EXIT
}

# start_nginx PORT starts nginx (one worker process, as a fast loopback
# stand-in for Tecken) on 127.0.0.1:PORT, answering every GET as Tecken
# answers a symbol it has: a 302 to storage with a Debug-Time header. It
# installs nginx when missing.
start_nginx() {
	local port=$1 dir
	command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
	command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
	dir=$(mktemp -d)
	cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port;
    location / {
      add_header Debug-Time 0.0001 always;
      return 302 http://127.0.0.1:$port/storage\$uri;
    }
  }
}
CONF
	nginx -c "$dir/nginx.conf" -p "$dir" &
	NGINX_PID=$!
	for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0; sleep 0.1; done
	echo "nginx did not start on 127.0.0.1:$port:" >&2
	cat "$dir/error.log" >&2
	return 1
}
