#!/usr/bin/python3
"""TCP sink: accepts ONE connection and records every byte the socket delivers.

usage: sink.py BIND_ADDRESS PORT OUT_FILE [--timeout S]
Prints JSON lines on stdout:
  {"event": "ready", ...}                         listening
  {"event": "connected", "peer": [ip, port]}      connection accepted
  {"event": "recv", "total": N}                   progress, at most every 0.2 s (file is flushed after every recv)
  {"event": "done", "total": N, "sha256": HEX}    at EOF / reset / timeout, then exits
OUT_FILE holds exactly the bytes the application read from the socket: this is what the
e2e tests compare against what the client sent, to prove at the server that forged bytes
never reached the socket.
"""
import argparse
import hashlib
import json
import socket
import sys
import time


def emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("bind")
    ap.add_argument("port", type=int)
    ap.add_argument("out_file")
    ap.add_argument("--timeout", type=float, default=120.0, help="idle timeout per recv")
    a = ap.parse_args()

    family = socket.AF_INET6 if ":" in a.bind else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # '::' takes IPv4 too
    ls.bind((a.bind, a.port))
    ls.listen(1)
    emit(event="ready", bind=a.bind, port=a.port)
    conn, peer = ls.accept()
    ls.close()
    emit(event="connected", peer=list(peer[:2]))
    conn.settimeout(a.timeout)
    h = hashlib.sha256()
    total = 0
    last_emit = 0.0
    end = "eof"
    with open(a.out_file, "wb") as f:
        while True:
            try:
                d = conn.recv(65536)
            except socket.timeout:
                end = "timeout"
                break
            except OSError as e:
                end = f"error: {e}"
                break
            if not d:
                break
            f.write(d)
            f.flush()
            h.update(d)
            total += len(d)
            now = time.monotonic()
            if now - last_emit >= 0.2:  # bounded output even for 100 MB in small segments
                emit(event="recv", total=total)
                last_emit = now
    conn.close()
    emit(event="done", total=total, sha256=h.hexdigest(), end=end)
    return 0


if __name__ == "__main__":
    sys.exit(main())
