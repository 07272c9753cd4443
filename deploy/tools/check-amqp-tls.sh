#!/usr/bin/env bash
# deploy/ops/amqp through a port forward (docs/runbooks/failover.md#an-operator-shell): the
# broker's certificate names its endpoint, never 127.0.0.1. Against a local TLS listener with a
# certificate for a broker-like name (trusted through SSL_CERT_FILE), checks that
#   1. amqps://…@127.0.0.1 fails hostname verification, as it would against Amazon MQ;
#   2. with RABBITMQ_TLS_SERVER_NAME set to the endpoint name the handshake verifies.
# Usage: check-amqp-tls.sh SCRATCH_DIR PYTHON
set -euo pipefail
dir=$1 python=$2
name=b-0123abcd-demo.mq.ap-northeast-2.on.aws
rm -rf "$dir" && mkdir -p "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$name" -addext "subjectAltName=DNS:$name" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
"$python" - "$dir" <<'PY' &
import socket, ssl, sys
d = sys.argv[1]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(f"{d}/cert.pem", f"{d}/key.pem")
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
open(f"{d}/port", "w").write(str(s.getsockname()[1]))
for _ in range(2):
    c, _ = s.accept()
    try:
        ctx.wrap_socket(c, server_side=True).close()
    except (ssl.SSLError, OSError):
        c.close()
PY
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [[ -s "$dir/port" ]] && break; sleep 0.1; done
url="amqps://operator:unused@127.0.0.1:$(cat "$dir/port")/"
export SSL_CERT_FILE="$dir/cert.pem"
if RABBITMQ_URL=$url "$python" deploy/ops/amqp tls-check >"$dir/without.txt"; then
    cat "$dir/without.txt"; echo "error: amqps to 127.0.0.1 verified without a server name" >&2; exit 1
fi
grep -q 'certificate not valid for 127.0.0.1' "$dir/without.txt"
RABBITMQ_URL=$url RABBITMQ_TLS_SERVER_NAME=$name "$python" deploy/ops/amqp tls-check | tee "$dir/with.txt"
grep -q "valid certificate for $name" "$dir/with.txt"
echo "amqps through 127.0.0.1: refused without RABBITMQ_TLS_SERVER_NAME, verified with it"
