# cfssl (Debian's golang-cfssl) as a CA server for the tests, sourced after
# cms.sh. cfssl_start makes, in $WORK/cfssl: its own CA (ECDSA P-256,
# ca.pem), a signing configuration whose profiles "card" (365 days) and
# "short" (14 days) give a card key's usages and need the auth key in
# auth.key (hex, 0600), and its certificate database certs.db (SQLite, in
# the schema of cfssl's certdb: cfssl 1.2 ships no migrations); then starts
# `cfssl serve` on CFSSL_URL and the CRL publisher (cfssl-crl.py) on
# CFSSL_CRL_URL. Both are stopped by the harness (NAME.proc.pid);
# cfssl_stop stops the CA server alone and cfssl_serve starts it again.
CFSSL_TLS=()
cfssl_start() {
    local d=$WORK/cfssl usages i
    mkdir -p "$d" && chmod 700 "$d" || return 1
    printf '{"CN":"Tessera Test cfssl CA","key":{"algo":"ecdsa","size":256},"names":[{"O":"Example"}]}\n' \
        > "$d/csr.json"
    (cd "$d" && cfssl gencert -initca csr.json 2> gencert.log | cfssljson -bare ca) && [ -s "$d/ca-key.pem" ] ||
        return 1
    (umask 077 && openssl rand -hex 32 > "$d/auth.key")
    usages='"digital signature", "key encipherment", "key agreement", "client auth", "email protection"'
    cat > "$d/config.json" <<EOF
{"signing": {
   "default": {"expiry": "24h", "usages": ["digital signature"], "auth_key": "tessera"},
   "profiles": {
     "card": {"expiry": "8760h", "usages": [$usages], "auth_key": "tessera"},
     "short": {"expiry": "336h", "usages": [$usages], "auth_key": "tessera"},
     "server": {"expiry": "8760h", "usages": ["digital signature", "server auth"], "auth_key": "tessera"}}},
 "auth_keys": {"tessera": {"type": "standard", "key": "$(cat "$d/auth.key")"}}}
EOF
    /usr/bin/python3 -c 'import sqlite3, sys
sqlite3.connect(sys.argv[1]).executescript("""
CREATE TABLE certificates (serial_number blob NOT NULL, authority_key_identifier blob NOT NULL,
  ca_label blob, status blob NOT NULL, reason int, expiry timestamp, revoked_at timestamp, pem blob NOT NULL,
  PRIMARY KEY (serial_number, authority_key_identifier));
CREATE TABLE ocsp_responses (serial_number blob NOT NULL, authority_key_identifier blob NOT NULL,
  body blob NOT NULL, expiry timestamp, PRIMARY KEY (serial_number, authority_key_identifier),
  FOREIGN KEY (serial_number, authority_key_identifier)
    REFERENCES certificates (serial_number, authority_key_identifier));""")' "$d/certs.db" || return 1
    printf '{"driver": "sqlite3", "data_source": "%s"}\n' "$d/certs.db" > "$d/db.json"
    CFSSL_PORT=$(free_port)
    CFSSL_URL=http://127.0.0.1:$CFSSL_PORT
    cfssl_serve || return 1
    /usr/bin/python3 "$TESSERA_SRCDIR/tests/lib/cfssl-crl.py" "$d" "$d/crl.port" > "$d/crl.log" 2>&1 </dev/null &
    echo $! > "$WORK/cfssl-crl.proc.pid"
    for i in $(seq 100); do
        [ -s "$d/crl.port" ] && { CFSSL_CRL_URL=http://127.0.0.1:$(cat "$d/crl.port")/ca.crl; return 0; }
        sleep 0.05
    done
    return 1
}
# cfssl_serve [CA-DIR]: the CA server (with the CA of CA-DIR/ca.pem,
# ca-key.pem), given the options in the array CFSSL_TLS too (set by tls_make).
cfssl_serve() {
    local d=$WORK/cfssl ca=${1:-$WORK/cfssl}
    cfssl serve -address 127.0.0.1 -port "$CFSSL_PORT" -ca "$ca/ca.pem" -ca-key "$ca/ca-key.pem" \
        -config "$d/config.json" -db-config "$d/db.json" "${CFSSL_TLS[@]}" >> "$d/serve.log" 2>&1 </dev/null &
    echo $! > "$WORK/cfssl.proc.pid"
    port_wait "$CFSSL_PORT"
}
cfssl_stop() {
    local pid
    pid=$(cat "$WORK/cfssl.proc.pid") && kill "$pid" && while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    rm -f "$WORK/cfssl.proc.pid"
}
# A certificate as cfssl's database has it: "STATUS|REASON" (serial in hex).
cfssl_status() {
    /usr/bin/python3 -c 'import sqlite3, sys
n = str(int(sys.argv[2], 16))
for r in sqlite3.connect(sys.argv[1]).execute(
        "SELECT status, reason FROM certificates WHERE serial_number = ?", (n,)):
    print("%s|%s" % r)' "$WORK/cfssl/certs.db" "$1"
}
# TLS for the CA server, in $WORK/tls: a TLS CA (ca.pem), the server's
# certificate for 127.0.0.1 and a client certificate (an issuing station's),
# keys 0600; CFSSL_TLS then makes cfssl_serve serve https and require a
# client certificate from that CA.
tls_make() {
    local t=$WORK/tls
    mkdir -p "$t" && chmod 700 "$t" || return 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/ca.key" -out "$t/ca.pem" \
        -subj "/CN=Tessera Test TLS CA" -days 2 2>/dev/null || return 1
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/server.key" \
        -subj "/CN=127.0.0.1" 2>/dev/null |
        openssl x509 -req -CA "$t/ca.pem" -CAkey "$t/ca.key" -days 2 -out "$t/server.pem" \
            -extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') 2>/dev/null || return 1
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$t/client.key" \
        -subj "/CN=issuing station" 2>/dev/null |
        openssl x509 -req -CA "$t/ca.pem" -CAkey "$t/ca.key" -days 2 -out "$t/client.pem" \
            -extfile <(printf 'extendedKeyUsage=clientAuth\n') 2>/dev/null || return 1
    chmod 600 "$t"/*.key
    CFSSL_TLS=(-tls-cert "$t/server.pem" -tls-key "$t/server.key" -mutual-tls-ca "$t/ca.pem")
}
