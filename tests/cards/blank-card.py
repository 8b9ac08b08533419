#!/usr/bin/env python3
"""A card with no PIV application, for the tests: it connects to a vpcd
reader like tests/cards/vpiv does and answers every APDU with 6A82 (file or
application not found), as a bank card or an unknown token would.

    blank-card.py PORT [PIDFILE]
"""
import os
import socket
import struct
import sys

ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")   # an ISO 14443 storage card


def main():
    port = int(sys.argv[1])
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write(str(os.getpid()))
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        head = s.recv(2, socket.MSG_WAITALL)
        if len(head) < 2:
            return
        (n,) = struct.unpack(">H", head)
        msg = s.recv(n, socket.MSG_WAITALL) if n else b""
        if n == 1:
            if msg[0] == 0x04:          # get ATR
                s.sendall(struct.pack(">H", len(ATR)) + ATR)
            continue                    # power on/off, reset: no answer
        s.sendall(struct.pack(">H", 2) + b"\x6a\x82")


if __name__ == "__main__":
    main()
