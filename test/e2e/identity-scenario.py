#!/usr/bin/python3
# Flow scenarios for the identity e2e test. Each scenario opens a real socket, sends on it,
# prints one JSON line {"tuple": {...}, "pids": {...}} and holds everything until stdin closes.
# Helper processes (children, the SCM_RIGHTS receiver) exit when the scenario process exits.
import json, os, socket, struct, sys, time

SCRIPT = os.path.abspath(__file__)
sys.path.insert(0, os.path.join(os.path.dirname(SCRIPT), '..', 'peers'))
from icmp import icmp_echo  # noqa: E402  (shared with the other peers)
PY = '/usr/bin/python3'
TCP_PORT, UDP_PORT = 9000, 9001


def tup(proto, s, family):
    src = s.getsockname()
    dst = s.getpeername()
    return {'family': family, 'proto': proto, 'src': src[0], 'sport': src[1], 'dst': dst[0], 'dport': dst[1]}


def done(t, **pids):
    print(json.dumps({'tuple': t, 'pids': pids}), flush=True)
    sys.stdin.read()


def wait_parent(rfd):
    # Block until the scenario process goes away (its end of the pipe closes).
    os.read(rfd, 1)
    os._exit(0)


def main():
    what = sys.argv[1]
    me = os.getpid()
    if what == 'server':
        ls = []
        for fam, addr in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, TCP_PORT))
            s.listen(512)
            ls.append(s)
        print(json.dumps({'ready': True}), flush=True)
        sys.stdin.read()
    elif what in ('tcp4', 'tcp6'):
        fam, addr = (socket.AF_INET, '127.0.0.1') if what == 'tcp4' else (socket.AF_INET6, '::1')
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.connect((addr, TCP_PORT))
        done(tup('tcp', s, 4 if what == 'tcp4' else 6), holder=me)
    elif what == 'tcp-mapped':
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.connect(('::ffff:127.0.0.1', TCP_PORT))
        t = tup('tcp', s, 4)
        t['src'], t['dst'] = t['src'].replace('::ffff:', ''), t['dst'].replace('::ffff:', '')
        done(t, holder=me)
    elif what == 'tcp-syn-held':
        # Non-blocking connect whose SYN the test's iptables rule holds back (dropped at
        # OUTPUT, where the agent's NFQUEUE rule would queue it): the socket is in SYN_SENT.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(('127.0.0.1', 9002))
        except BlockingIOError:
            pass
        src = s.getsockname()
        done({'family': 4, 'proto': 'tcp', 'src': src[0], 'sport': src[1], 'dst': '127.0.0.1', 'dport': 9002}, holder=me)
    elif what == 'udp-connected':
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(('127.0.0.1', UDP_PORT))
        s.send(b'x')
        done(tup('udp', s, 4), holder=me)
    elif what == 'udp-unconnected':
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(('::', 0))
        s.sendto(b'x', ('::1', UDP_PORT))
        t = {'family': 6, 'proto': 'udp', 'src': '::1', 'sport': s.getsockname()[1], 'dst': '::1', 'dport': UDP_PORT}
        done(t, holder=me)
    elif what in ('ping4', 'ping6'):
        v6 = what == 'ping6'
        if v6:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)
            s.sendto(icmp_echo(0, True), ('::1', 0))
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
            s.sendto(icmp_echo(0), ('127.0.0.1', 0))
        # A ping socket's "port" is the echo identifier the kernel writes into every request.
        ident = s.getsockname()[1]
        dst = '::1' if v6 else '127.0.0.1'
        done({'family': 6 if v6 else 4, 'proto': 'icmp', 'src': dst, 'sport': ident, 'dst': dst, 'dport': 0}, holder=me)
    elif what == 'raw-icmp':
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        s.sendto(icmp_echo(4242), ('127.0.0.1', 0))
        done({'family': 4, 'proto': 'icmp', 'src': '127.0.0.1', 'sport': 4242, 'dst': '127.0.0.1', 'dport': 0}, holder=me)
    elif what == 'inherit-exec':
        # The paper's case: the parent opens the socket, a child it execs inherits it and connects.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.set_inheritable(True)
        r, w = os.pipe()
        alive_r, alive_w = os.pipe()
        os.set_inheritable(w, True)
        os.set_inheritable(alive_r, True)
        pid = os.fork()
        if pid == 0:
            os.execv(PY, [PY, SCRIPT, 'child-connect', str(s.fileno()), str(w), str(alive_r)])
        os.close(w)
        t = json.loads(os.read(r, 4096))
        done(t, parent=me, child=pid)
    elif what == 'child-connect':
        fd, w, alive_r = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        s = socket.socket(fileno=fd)
        s.connect(('127.0.0.1', TCP_PORT))
        os.write(w, json.dumps(tup('tcp', s, 4)).encode())
        wait_parent(alive_r)
    elif what == 'inherit-passive':
        # The parent connects; a child it execs holds the inherited socket and does nothing.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(('127.0.0.1', TCP_PORT))
        s.set_inheritable(True)
        r, w = os.pipe()
        alive_r, alive_w = os.pipe()
        os.set_inheritable(w, True)
        os.set_inheritable(alive_r, True)
        pid = os.fork()
        if pid == 0:
            os.execv(PY, [PY, SCRIPT, 'child-hold', str(w), str(alive_r)])
        os.close(w)
        os.read(r, 1)
        done(tup('tcp', s, 4), parent=me, child=pid)
    elif what == 'child-hold':
        w, alive_r = int(sys.argv[2]), int(sys.argv[3])
        os.write(w, b'1')
        wait_parent(alive_r)
    elif what in ('scm-use', 'scm-passive'):
        # A passes the socket over a UNIX socket to B, an unrelated process (double fork, so B
        # is not A's child). scm-use: B connects. scm-passive: A connects, B only holds it.
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        alive_r, alive_w = os.pipe()
        if os.fork() == 0:
            if os.fork() != 0:
                os._exit(0)
            a.close()
            os.close(alive_w)
            b.send(str(os.getpid()).encode().ljust(16))
            msg, fds, _, _ = socket.recv_fds(b, 16, 1)
            s = socket.socket(fileno=fds[0])
            if what == 'scm-use':
                s.connect(('127.0.0.1', TCP_PORT))
            b.send(json.dumps(tup('tcp', s, 4)).encode())
            wait_parent(alive_r)
        b.close()
        other = int(a.recv(16).decode().strip())
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if what == 'scm-passive':
            s.connect(('127.0.0.1', TCP_PORT))
        socket.send_fds(a, [b'fd'], [s.fileno()])
        t = json.loads(a.recv(4096))
        done(t, sender=me, receiver=other)
    elif what == 'gone':
        # Connect, report the tuple, exit at once: the flow's process is gone.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect(('127.0.0.1', TCP_PORT))
        print(json.dumps({'tuple': tup('tcp', s, 4), 'pids': {'holder': me}}), flush=True)
        os._exit(0)
    else:
        sys.exit('unknown scenario ' + what)


main()
