#!/usr/bin/python3
# Opens N TCP connections one after another to 127.0.0.1:PORT; after each connect prints the
# flow tuple as a JSON line and waits for one line on stdin (the attribution is done) before
# closing it and opening the next.
import json, socket, sys

port, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(('127.0.0.1', port))
    a, b = s.getsockname(), s.getpeername()
    print(json.dumps({'family': 4, 'proto': 'tcp', 'src': a[0], 'sport': a[1], 'dst': b[0], 'dport': b[1]}), flush=True)
    if not sys.stdin.readline():
        break
    s.close()
