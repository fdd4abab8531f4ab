#!/usr/bin/python3
# Peer processes for the agent's egress tests: servers on the far host, and clients that open
# TCP, UDP and ICMP flows in the ways the policy must handle (another executable, an inherited
# socket, a socket passed over SCM_RIGHTS, a process that exits at once). Each client prints one
# JSON line: {"ok", "errno", "error", "ms", "sport", "pid", ...}. Run it with any copy of the
# Python interpreter: the copy's path (and hash) is what the agent sees.
import errno, json, os, select, socket, struct, sys, threading, time

SCRIPT = os.path.abspath(__file__)
sys.path.insert(0, os.path.join(os.path.dirname(SCRIPT), '..', 'peers'))
from icmp import icmp_echo  # noqa: E402  (shared with the other peers)


def out(**kw):
    print(json.dumps(kw), flush=True)


def family_of(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET


def err_fields(e):
    return {'ok': False, 'errno': errno.errorcode.get(e.errno, str(e.errno)) if e.errno else None, 'error': str(e)}


def echo_tcp(conn):
    try:
        while True:
            d = conn.recv(65536)
            if not d:
                break
            conn.sendall(d)
    except OSError:
        pass
    conn.close()


def serve(tcp_ports, udp_ports):
    for p in tcp_ports:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(('::', p))
        s.listen(1024)

        def acc(s=s):
            while True:
                c, _ = s.accept()
                threading.Thread(target=echo_tcp, args=(c,), daemon=True).start()
        threading.Thread(target=acc, daemon=True).start()
    for p in udp_ports:
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        u.bind(('::', p))

        def loop(u=u):
            while True:
                d, a = u.recvfrom(65536)
                u.sendto(d, a)
        threading.Thread(target=loop, daemon=True).start()
    out(ready=True)
    sys.stdin.read()


def tcp_exchange(s, host, port, nbytes):
    t0 = time.monotonic()
    try:
        s.settimeout(5)
        s.connect((host, port))
    except OSError as e:
        return dict(err_fields(e), ms=(time.monotonic() - t0) * 1000, sport=s.getsockname()[1], stage='connect')
    ms = (time.monotonic() - t0) * 1000
    data = os.urandom(nbytes)
    try:
        s.sendall(data)
        got = b''
        while len(got) < nbytes:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except OSError as e:
        return dict(err_fields(e), ms=ms, sport=s.getsockname()[1], stage='exchange')
    return {'ok': got == data, 'errno': None, 'ms': ms, 'sport': s.getsockname()[1], 'echoed': len(got)}


def tcp(host, port, nbytes=1000, hold=False):
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    r = tcp_exchange(s, host, port, nbytes)
    out(pid=os.getpid(), **r)
    if hold:
        sys.stdin.read()


def udp(host, port):
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.connect((host, port))
    t0 = time.monotonic()
    res = {'sport': s.getsockname()[1]}
    try:
        s.send(b'labelwall-udp')
        s.settimeout(3)
        d = s.recv(65536)
        res.update(ok=d == b'labelwall-udp', errno=None)
    except OSError as e:
        res.update(err_fields(e))
    res['ms'] = (time.monotonic() - t0) * 1000
    out(pid=os.getpid(), **res)


def ping(host):
    v6 = ':' in host
    if v6:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)
        s.setsockopt(socket.IPPROTO_IPV6, 25, 1)  # IPV6_RECVERR (not exported by Python 3.11)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        s.setsockopt(socket.IPPROTO_IP, 11, 1)  # IP_RECVERR
    s.connect((host, 0))
    ident = s.getsockname()[1]
    t0 = time.monotonic()
    res = {'sport': ident}
    try:
        s.send(icmp_echo(0, v6))
        s.settimeout(3)
        d = s.recv(65536)
        res.update(ok=d[0] == (129 if v6 else 0), errno=None)
    except OSError as e:
        res.update(err_fields(e))
    res['ms'] = (time.monotonic() - t0) * 1000
    out(pid=os.getpid(), **res)


def inherit_exec(host, port, child_exe):
    # The paper's case: this process opens the socket, a child it execs inherits it and sends.
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    s.set_inheritable(True)
    r, w = os.pipe()
    os.set_inheritable(w, True)
    pid = os.fork()
    if pid == 0:
        os.execv(child_exe, [child_exe, SCRIPT, 'child-connect', str(s.fileno()), str(w), host, str(port)])
    os.close(w)
    res = json.loads(os.read(r, 65536))
    os.waitpid(pid, 0)
    out(parent=os.getpid(), child=pid, **res)


def child_connect(fd, w, host, port):
    s = socket.socket(fileno=fd)
    r = tcp_exchange(s, host, port, 1000)
    os.write(w, json.dumps(r).encode())


def scm(host, port, receiver_exe):
    # This process creates the socket and passes it over a UNIX socket to an unrelated process
    # (double fork: not our child), which connects and sends on it.
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    b.set_inheritable(True)
    if os.fork() == 0:
        if os.fork() != 0:
            os._exit(0)
        a.close()
        os.execv(receiver_exe, [receiver_exe, SCRIPT, 'scm-recv', str(b.fileno()), host, str(port)])
    os.wait()
    b.close()
    receiver = int(a.recv(16).decode().strip())
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    socket.send_fds(a, [b'fd'], [s.fileno()])
    res = json.loads(a.recv(65536))
    out(sender=os.getpid(), receiver=receiver, **res)


def scm_recv(ufd, host, port):
    b = socket.socket(fileno=ufd)
    b.send(str(os.getpid()).encode().ljust(16))
    _, fds, _, _ = socket.recv_fds(b, 16, 1)
    s = socket.socket(fileno=fds[0])
    b.send(json.dumps(tcp_exchange(s, host, port, 1000)).encode())


def short(host, port, blocking):
    # Connect and exit at once: blocking = after the handshake (and 5 bytes), else right after
    # the SYN was queued (non-blocking connect).
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    if blocking:
        s.connect((host, port))
        s.send(b'bye!\n')
    else:
        s.setblocking(False)
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
    out(pid=os.getpid(), sport=s.getsockname()[1])
    os._exit(0)


def main():
    a = sys.argv[1:]
    what = a[0]
    if what == 'serve':
        tcp_ports = [int(x) for x in a[1].split(',')]
        udp_ports = [int(x) for x in a[2].split(',')] if len(a) > 2 else []
        serve(tcp_ports, udp_ports)
    elif what == 'tcp':
        tcp(a[1], int(a[2]), int(a[3]) if len(a) > 3 else 1000, hold='--hold' in a)
    elif what == 'udp':
        udp(a[1], int(a[2]))
    elif what == 'ping':
        ping(a[1])
    elif what == 'inherit-exec':
        inherit_exec(a[1], int(a[2]), a[3])
    elif what == 'child-connect':
        child_connect(int(a[1]), int(a[2]), a[3], int(a[4]))
    elif what == 'scm':
        scm(a[1], int(a[2]), a[3])
    elif what == 'scm-recv':
        scm_recv(int(a[1]), a[2], int(a[3]))
    elif what in ('short', 'short-nb'):
        short(a[1], int(a[2]), what == 'short')
    else:
        sys.exit('unknown mode ' + what)


main()
