#!/usr/bin/python3
"""SSH echo check with paramiko: run `cat` over an exec channel, stream N KiB through it and
compare what comes back.

usage: ssh_echo.py HOST PORT USER KEY_FILE [--kb N] [--host-key-file PUB] [--timeout S]
Prints one JSON line {"ok", "sent", "received", "sha256_sent", "sha256_received", "seconds",
"error"?}; exit status 0 when the echo matched byte for byte, 1 otherwise.
The payload is blob(N*1024, "ssh") from blob.py. Writer and reader run concurrently, so the
SSH window never deadlocks on large transfers.
"""
import argparse
import hashlib
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blob import blob  # noqa: E402

import paramiko  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("user")
    ap.add_argument("key_file")
    ap.add_argument("--kb", type=int, default=64)
    ap.add_argument("--host-key-file", help="server's public host key (OpenSSH .pub); verified when given")
    ap.add_argument("--timeout", type=float, default=20.0)
    a = ap.parse_args()

    data = blob(a.kb * 1024, "ssh")
    result = {"ok": False, "sent": len(data), "received": 0,
              "sha256_sent": hashlib.sha256(data).hexdigest(), "sha256_received": None}
    t0 = time.monotonic()
    client = paramiko.SSHClient()
    try:
        if a.host_key_file:
            with open(a.host_key_file) as f:
                kind, b64 = f.read().split()[:2]
            name = a.host if a.port == 22 else f"[{a.host}]:{a.port}"
            entry = paramiko.hostkeys.HostKeyEntry.from_line(f"{name} {kind} {b64}")
            client.get_host_keys().add(name, kind, entry.key)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        else:
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        pkey = paramiko.Ed25519Key.from_private_key_file(a.key_file)
        client.connect(a.host, a.port, username=a.user, pkey=pkey, timeout=a.timeout,
                       banner_timeout=a.timeout, auth_timeout=a.timeout,
                       allow_agent=False, look_for_keys=False)
        chan = client.get_transport().open_session(timeout=a.timeout)
        chan.settimeout(a.timeout)
        chan.exec_command("cat")
        received = bytearray()
        err = []

        def reader():
            try:
                while True:
                    d = chan.recv(65536)
                    if not d:
                        return
                    received.extend(d)
            except Exception as e:  # noqa: BLE001
                err.append(f"read: {type(e).__name__}: {e}")

        th = threading.Thread(target=reader)
        th.start()
        chan.sendall(data)
        chan.shutdown_write()
        th.join(a.timeout * 3)
        status = chan.recv_exit_status() if not err else None
        result.update(received=len(received), sha256_received=hashlib.sha256(received).hexdigest(),
                      exit_status=status)
        result["ok"] = bytes(received) == data and status == 0
        if err:
            result["error"] = err[0]
    except Exception as e:  # noqa: BLE001 - reported as JSON
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        client.close()
    result["seconds"] = round(time.monotonic() - t0, 3)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
