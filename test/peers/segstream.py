#!/usr/bin/python3
"""A steady stream of TCP segments (IPv4) from a raw socket, no connection needed.

usage: segstream.py SRC DST DPORT [--rate PPS] [--seconds S] [--key-hex K]
Each segment carries ACK|PSH, 16 bytes of payload and a new sequence number. Without
--key-hex it has no TCP option at all (an unlabelled segment); with it, the compat label
(kind 253, length 40, ExID 0x4677, 4 zero bytes, HMAC-SHA256(key, seq || payload)) as its
only option. The raw socket's packets go through the sender's OUTPUT hooks (so an agent
there labels them). Runs until killed, or for --seconds; prints {"sent": N} at the end
(SIGTERM included). The lifecycle tests count at the receiver, with iptables rules after
labelwall's, how many of these got through.
"""
import argparse
import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import sys
import time


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def segment(src: bytes, dst: bytes, sport: int, dport: int, seq: int, payload: bytes, key: bytes | None) -> bytes:
    opts = b""
    if key is not None:
        mac = hmac.new(key, struct.pack("!I", seq) + payload, hashlib.sha256).digest()
        opts = bytes([253, 40, 0x46, 0x77, 0, 0, 0, 0]) + mac
    off = (20 + len(opts)) // 4
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, off << 4, 0x18, 65535, 0, 0) + opts
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(hdr) + len(payload))
    c = csum(pseudo + hdr + payload)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("dport", type=int)
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--seconds", type=float, default=0.0, help="0 = until killed")
    ap.add_argument("--key-hex")
    a = ap.parse_args()
    key = bytes.fromhex(a.key_hex) if a.key_hex else None
    src, dst = socket.inet_aton(a.src), socket.inet_aton(a.dst)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    sent = 0
    stop = False

    def on_term(_sig, _frm):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    sport = 40000 + os.getpid() % 20000
    seq = int.from_bytes(os.urandom(4), "big")
    start = time.monotonic()
    print(json.dumps({"event": "ready"}), flush=True)
    while not stop:
        now = time.monotonic() - start
        if a.seconds and now >= a.seconds:
            break
        due = int(now * a.rate) + 1
        while sent < due and not stop:
            payload = struct.pack("!I", sent) + b"labelwall-test."[:12]
            try:
                s.sendto(segment(src, dst, sport, a.dport, seq, payload, key), (a.dst, 0))
            except OSError:
                pass  # fail-closed queue without listener: the kernel drops it (EPERM is not ours to count)
            seq = (seq + len(payload)) & 0xFFFFFFFF
            sent += 1
        time.sleep(0.0005)
    print(json.dumps({"sent": sent}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
