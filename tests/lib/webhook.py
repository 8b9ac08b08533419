#!/usr/bin/python3
"""A webhook receiver for the tests: an HTTP server on 127.0.0.1 that appends
each POST to LOG as one JSON line ({"path", "headers", "body", "verified"})
and answers 204; while the file FAIL holds a number N > 0, the next N
requests are answered 503 instead (and N counts down). With SECRET (a file),
a request must carry X-Tessera-Timestamp (within 5 minutes) and
X-Tessera-Signature: sha256=HMAC-SHA256(secret, "TIMESTAMP.BODY"), as a
receiver checks them; one that does not is logged unverified and answered
401. Its port is written to PORTFILE once it listens.
    webhook.py LOG PORTFILE FAIL [SECRET]"""
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

log_path, port_path, fail_path = sys.argv[1:4]
secret = open(sys.argv[4], "rb").read().rstrip(b"\r\n") if len(sys.argv) > 4 else None


def verified(headers, body):
    stamp = headers.get("X-Tessera-Timestamp", "")
    got = headers.get("X-Tessera-Signature", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
        return False
    want = "sha256=" + hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(got, want)


def take_failure():
    try:
        with open(fail_path) as f:
            n = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return False
    if n <= 0:
        return False
    with open(fail_path, "w") as f:
        f.write(str(n - 1))
    return True


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if take_failure():
            self.send_response(503)
            self.end_headers()
            return
        ok = secret is None or verified(self.headers, body)
        with open(log_path, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": dict(self.headers),
                                "body": body.decode("utf-8"), "verified": ok}) + "\n")
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, fmt, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
with open(port_path + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_path + ".tmp", port_path)
server.serve_forever()
