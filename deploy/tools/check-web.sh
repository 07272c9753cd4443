#!/usr/bin/env bash
# The web image without Docker: lays out the files exactly as the COPY lines of
# deploy/docker/Dockerfile.web do, serves them with deploy/docker/nginx.conf on a local nginx
# (Debian's; the config uses nothing newer), and checks what a browser gets: the page at every
# page address, every asset that index.html references, the probes, the security headers.
# Called by deploy/check with a scratch directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
scratch=$1
rm -rf "$scratch" && mkdir -p "$scratch/root" "$scratch/tmp"
fail() { echo "FAIL $*" >&2; exit 1; }

# COPY <src> <dst> of the Dockerfile, into $scratch/root.
while read -r src dst; do
    target="$scratch/root$dst"
    if [[ "$dst" == */ ]]; then mkdir -p "$target"; cp -r "$src"/. "$target" 2>/dev/null || cp "$src" "$target"
    else mkdir -p "$(dirname "$target")"; cp "$src" "$target"; fi
done < <(sed -n 's/^COPY \([^-][^ ]*\) \([^ ]*\)$/\1 \2/p' deploy/docker/Dockerfile.web)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s#listen 8080;#listen 127.0.0.1:$port;#" -e 's#listen \[::\]:8080;##' \
    -e "s#root /usr/share/nginx/html;#root $scratch/root/usr/share/nginx/html;#" \
    "$scratch/root/etc/nginx/conf.d/default.conf" >"$scratch/site.conf"
cat >"$scratch/nginx.conf" <<EOF
worker_processes 1;
pid $scratch/tmp/nginx.pid;
error_log $scratch/tmp/error.log;
events { worker_connections 64; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log off;
  client_body_temp_path $scratch/tmp/body;
  proxy_temp_path $scratch/tmp/proxy;
  fastcgi_temp_path $scratch/tmp/fastcgi;
  uwsgi_temp_path $scratch/tmp/uwsgi;
  scgi_temp_path $scratch/tmp/scgi;
  include $scratch/site.conf;
}
EOF
nginx -t -q -c "$scratch/nginx.conf"
nginx -c "$scratch/nginx.conf"
trap 'nginx -c "$scratch/nginx.conf" -s stop 2>/dev/null || true' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 50); do curl -fsS "$base/live" >/dev/null 2>&1 && break; sleep 0.1; done

for path in / /login /shop/00000000-0000-0000-0000-000000000000 /admin/monitoring; do
    headers=$(curl -fsS -D - -o "$scratch/page.html" "$base$path") || fail "GET $path"
    cmp -s "$scratch/page.html" web/index.html || fail "GET $path is not web/index.html"
    for h in Content-Security-Policy Strict-Transport-Security X-Content-Type-Options X-Frame-Options Referrer-Policy; do
        grep -qi "^$h:" <<<"$headers" || fail "GET $path: no $h header"
    done
done
count=0
for asset in $(grep -o '/assets/[^"]*' web/index.html | sort -u) $(cd web && printf '/assets/%s\n' app/*.js app/pages/*.js); do
    curl -fsS -o /dev/null "$base$asset" || fail "GET $asset (referenced by the page)"
    count=$((count + 1))
done
[[ "$(curl -fsS "$base/ready")" == ok ]] || fail "GET /ready"
[[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/assets/app/missing.js")" == 404 ]] || fail "a missing asset is not 404"
echo "ok  nginx serves the page at every address with its security headers, $count assets, /live and /ready"
