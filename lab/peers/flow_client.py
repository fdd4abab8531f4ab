#!/usr/bin/python3
"""A long-lived TCP connection driven line by line from stdin, for injection tests.

usage: flow_client.py DST PORT
Commands on stdin (one per line), answers as JSON lines on stdout:
  send N TAG  -> sends blob(N, TAG) (blob.py), waits until the peer has ACKed all of it,
                 answers {"event": "sent", "n": N, "total": T}
  seq         -> {"event": "seq", "snd_nxt": S, "rcv_nxt": R}: the socket's next send sequence
                 number and next expected receive sequence number, read from the kernel with
                 TCP_REPAIR / TCP_QUEUE_SEQ (needs CAP_NET_ADMIN; the socket is idle because
                 `send` waits for the ACKs). A segment forged with seq=snd_nxt, ack=rcv_nxt is
                 exactly in window for the peer.
  close       -> shuts down writing, waits for the peer to close, {"event": "closed"}, exits
On connect: {"event": "connected", "local": [ip, port], "remote": [ip, port]}.
"""
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blob import blob  # noqa: E402

TCP_REPAIR = 19
TCP_REPAIR_QUEUE = 20
TCP_QUEUE_SEQ = 21
TCP_RECV_QUEUE = 1
TCP_SEND_QUEUE = 2
TCP_REPAIR_OFF_NO_WP = -1  # leave repair mode without sending a window probe
SIOCOUTQ = 0x5411


def emit(**kw) -> None:
    print(json.dumps(kw), flush=True)


def outq(s: socket.socket) -> int:
    import fcntl
    return struct.unpack("i", fcntl.ioctl(s.fileno(), SIOCOUTQ, b"\0" * 4))[0]


def seqs(s: socket.socket) -> tuple:
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
        snd = struct.unpack("I", s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)
        rcv = struct.unpack("I", s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
    finally:
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP)
    return snd, rcv


def main() -> int:
    dst, port = sys.argv[1], int(sys.argv[2])
    s = socket.create_connection((dst, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    emit(event="connected", local=list(s.getsockname()[:2]), remote=list(s.getpeername()[:2]))
    total = 0
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        try:
            if cmd[0] == "send":
                n, tag = int(cmd[1]), cmd[2] if len(cmd) > 2 else "flow"
                s.sendall(blob(n, tag))
                total += n
                deadline = time.monotonic() + 10
                while outq(s) > 0:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{outq(s)} bytes still unacknowledged")
                    time.sleep(0.005)
                emit(event="sent", n=n, total=total)
            elif cmd[0] == "seq":
                snd, rcv = seqs(s)
                emit(event="seq", snd_nxt=snd, rcv_nxt=rcv)
            elif cmd[0] == "close":
                s.shutdown(socket.SHUT_WR)
                try:
                    while s.recv(65536):
                        pass
                except OSError:
                    pass
                s.close()
                emit(event="closed")
                return 0
            else:
                emit(event="error", error=f"unknown command {cmd[0]}")
        except Exception as e:  # noqa: BLE001 - reported to the driving test
            emit(event="error", error=f"{type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
