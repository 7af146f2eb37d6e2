# Sourced by the benchmarks: start_nginx PORT starts nginx (one worker
# process, as a fast loopback stand-in for Tecken) on 127.0.0.1:PORT,
# answering every GET as Tecken answers a symbol it has: a 302 to storage
# with a Debug-Time header. It installs nginx when missing and stops it on
# exit. Only 127.0.0.1 is contacted.
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
