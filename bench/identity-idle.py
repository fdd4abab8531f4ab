#!/usr/bin/python3
# Starts N idle processes holding M sockets each (half TCP, half UDP bound to loopback),
# prints "ready" when all are up, and kills them all when stdin closes or on SIGTERM.
import os, signal, socket, sys, time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
m = int(sys.argv[2]) if len(sys.argv) > 2 else 20
children = []
r, w = os.pipe()
for i in range(n):
    pid = os.fork()
    if pid == 0:
        os.close(w)
        socks = []
        for j in range(m):
            if j % 2 == 0:
                socks.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(('127.0.0.1', 0))
                socks.append(s)
        # Block until the parent goes away (pipe EOF), holding the sockets.
        os.read(r, 1)
        os._exit(0)
    children.append(pid)
os.close(r)
print('ready', len(children), flush=True)

stopped = False

def stop(*_):
    global stopped
    if stopped:
        return
    stopped = True
    os.close(w)
    for c in children:
        try:
            os.waitpid(c, 0)
        except ChildProcessError:
            pass
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
try:
    sys.stdin.read()
finally:
    stop()
