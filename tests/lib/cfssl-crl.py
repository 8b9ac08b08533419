#!/usr/bin/python3
"""The CRL publisher of the tests' cfssl CA: an HTTP server on 127.0.0.1
that answers each GET with a new CRL (DER) of the certificates cfssl's
certificate database holds as revoked, signed by `cfssl gencrl` with the
CA's key: what a CA operator's publishing job does, since cfssl 1.2 serves
no CRL of its own. While DIR/crl.stale exists it serves instead a CRL
signed by the same key whose next update has passed (a replayed old one).
Its port is written to PORTFILE once it listens.
    cfssl-crl.py DIR PORTFILE   (DIR: certs.db, ca.pem, ca-key.pem)"""
import base64
import os
import sqlite3
import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, HTTPServer

ca_dir, port_path = sys.argv[1:3]


def make_crl():
    with sqlite3.connect(os.path.join(ca_dir, "certs.db")) as db:
        serials = [r[0] for r in db.execute("SELECT serial_number FROM certificates WHERE status = 'revoked'")]
    with tempfile.NamedTemporaryFile("w", dir=ca_dir, suffix=".serials") as f:
        f.write("".join(s + "\n" for s in serials))
        f.flush()
        out = subprocess.run(["cfssl", "gencrl", f.name, os.path.join(ca_dir, "ca.pem"),
                              os.path.join(ca_dir, "ca-key.pem")], check=True, capture_output=True)
    return base64.b64decode(out.stdout)


def stale_crl():
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    with open(os.path.join(ca_dir, "ca-key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    with open(os.path.join(ca_dir, "ca.pem"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    now = datetime.datetime.utcnow()
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
           .last_update(now - datetime.timedelta(days=9)).next_update(now - datetime.timedelta(days=2))
           .sign(key, hashes.SHA256()))
    return crl.public_bytes(serialization.Encoding.DER)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            der = stale_crl() if os.path.exists(os.path.join(ca_dir, "crl.stale")) else make_crl()
        except (OSError, ValueError, subprocess.CalledProcessError, sqlite3.Error) as e:
            self.send_error(500, str(e))
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/pkix-crl")
        self.send_header("Content-Length", str(len(der)))
        self.end_headers()
        self.wfile.write(der)

    def log_message(self, fmt, *args):
        sys.stderr.write("crl: " + fmt % args + "\n")


server = HTTPServer(("127.0.0.1", 0), Handler)
with open(port_path + ".new", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_path + ".new", port_path)
server.serve_forever()
