"""A NOTIFY_SOCKET listener, as systemd's: binds a UNIX datagram socket (a path, or an abstract
name given as '@name') and prints one JSON line per datagram received, with the sender's pid
(SO_PASSCRED, as systemd reads it). For every datagram that holds READY=1 it stops the sender's
process group (SIGSTOP: the daemon, its threads and any iptables child freeze), reads
iptables-save and ip6tables-save of its own network namespace (run it in the daemon's), lets
the group go on (SIGCONT), and adds how many LABELWALL lines each had at the moment READY=1
arrived. The first line, before any datagram, says the same of the state when it started.

usage: notify_listener.py ADDRESS
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time


def rules():
    out = {}
    for tool in ('iptables-save', 'ip6tables-save'):
        text = subprocess.run([tool], capture_output=True, text=True, check=True).stdout
        out[tool] = sum(1 for line in text.splitlines() if 'LABELWALL' in line)
    return out


def main():
    addr = sys.argv[1]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind('\0' + addr[1:] if addr.startswith('@') else addr)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    print(json.dumps({'listening': addr, 'rules': rules()}), flush=True)
    while True:
        data, anc, _flags, _addr = s.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, cred in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack('iii', cred[:12])[0]
        line = {'t': time.time(), 'pid': pid, 'msg': data.decode()}
        if 'READY=1' in line['msg'].split('\n'):
            pgid = os.getpgid(pid)
            os.killpg(pgid, signal.SIGSTOP)
            try:
                line['rules'] = rules()
            finally:
                os.killpg(pgid, signal.SIGCONT)
        print(json.dumps(line), flush=True)


main()
