#!/usr/bin/python3
"""HTTP client peer: runs a plan of requests and writes each response body to a file.

usage: http_client.py BASE_URL PLAN_JSON
  BASE_URL   e.g. http://10.200.3.2:8080 or http://[fd00:200:3::2]:8080
  PLAN_JSON  file holding a list of {"method", "path", "body_file"?, "out_file", "timeout"?}
Prints one JSON line: a list of {"status", "length", "error"?} in plan order.
A new TCP connection per request, so every request exercises a fresh handshake.
Exit status 0 even when requests fail: the caller judges the results.
"""
import http.client
import json
import sys
import urllib.parse


def main() -> None:
    base = urllib.parse.urlsplit(sys.argv[1])
    with open(sys.argv[2]) as f:
        plan = json.load(f)
    results = []
    for req in plan:
        body = None
        if req.get("body_file"):
            with open(req["body_file"], "rb") as f:
                body = f.read()
        conn = http.client.HTTPConnection(base.hostname, base.port, timeout=req.get("timeout", 10))
        try:
            headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
            conn.request(req["method"], req["path"], body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            with open(req["out_file"], "wb") as f:
                f.write(data)
            results.append({"status": resp.status, "length": len(data)})
        except Exception as e:  # noqa: BLE001 - reported to the caller, who decides
            results.append({"status": None, "length": 0, "error": f"{type(e).__name__}: {e}"})
        finally:
            conn.close()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
