#!/usr/bin/python3
# Client and server of bench/egress-bench.sh. Connections close with SO_LINGER 0 (a reset, no
# TIME_WAIT), so tens of thousands of them do not exhaust the local ports.
#   egress-client.py serve PORT                 accept and close, until stdin closes
#   egress-client.py lat N HOST PORT            N sequential connects: JSON {n, p50_ms, p99_ms, ...}
#   egress-client.py rate SECONDS PROCS HOST PORT   PROCS processes connecting in a loop: JSON {conns, per_s}
import json, os, socket, struct, sys, threading, time

LINGER0 = struct.pack('ii', 1, 0)


def one(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    t0 = time.perf_counter_ns()
    s.connect((host, port))
    t1 = time.perf_counter_ns()
    s.close()
    return (t1 - t0) / 1e6


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    a = sys.argv[1:]
    if a[0] == 'serve':
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(('0.0.0.0', int(a[1])))
        ls.listen(4096)

        def loop():
            while True:
                c, _ = ls.accept()
                c.close()
        for _ in range(2):
            threading.Thread(target=loop, daemon=True).start()
        print('ready', flush=True)
        sys.stdin.read()
    elif a[0] == 'lat':
        n, host, port = int(a[1]), a[2], int(a[3])
        for _ in range(20):
            one(host, port)  # warm-up
        xs = [one(host, port) for _ in range(n)]
        print(json.dumps({'n': n, 'p50_ms': pct(xs, 50), 'p99_ms': pct(xs, 99), 'mean_ms': sum(xs) / n, 'max_ms': max(xs)}))
    elif a[0] == 'rate':
        secs, procs, host, port = float(a[1]), int(a[2]), a[3], int(a[4])
        r, w = os.pipe()
        start = time.monotonic() + 0.3
        pids = []
        for _ in range(procs):
            pid = os.fork()
            if pid == 0:
                os.close(r)
                while time.monotonic() < start:
                    pass
                end = start + secs
                n = 0
                errs = 0
                while time.monotonic() < end:
                    try:
                        one(host, port)
                        n += 1
                    except OSError:
                        errs += 1
                os.write(w, struct.pack('ii', n, errs))
                os._exit(0)
            pids.append(pid)
        os.close(w)
        total = errs = 0
        for _ in range(procs):
            n, e = struct.unpack('ii', os.read(r, 8))
            total += n
            errs += e
        for p in pids:
            os.waitpid(p, 0)
        print(json.dumps({'conns': total, 'errors': errs, 'seconds': secs, 'per_s': total / secs}))


main()
