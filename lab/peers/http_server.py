#!/usr/bin/python3
"""Flask HTTP peer for the end-to-end tests.

usage: http_server.py BIND_ADDRESS PORT
Routes:
  GET    /blob/<n>     n deterministic bytes (blob.py)
  POST   /echo, PUT /echo   the request body back
  POST   /sha256       hex SHA-256 of the body, plus its length
  DELETE /item/<id>    JSON {"deleted": id}
  GET    /health       "ok"
Prints "READY <addr> <port>" on stdout once the socket listens. Threaded; quiet logs.
"""
import hashlib
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blob import blob  # noqa: E402

from flask import Flask, Response, jsonify, request  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

app = Flask(__name__)
logging.getLogger("werkzeug").setLevel(logging.ERROR)


@app.get("/health")
def health():
    return "ok"


@app.get("/blob/<int:n>")
def get_blob(n: int):
    return Response(blob(n), mimetype="application/octet-stream")


@app.route("/echo", methods=["POST", "PUT"])
def echo():
    return Response(request.get_data(), mimetype="application/octet-stream")


@app.post("/sha256")
def sha256():
    body = request.get_data()
    return jsonify({"sha256": hashlib.sha256(body).hexdigest(), "length": len(body)})


@app.delete("/item/<item_id>")
def delete_item(item_id: str):
    return jsonify({"deleted": item_id})


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: http_server.py BIND_ADDRESS PORT")
    host, port = sys.argv[1], int(sys.argv[2])
    server = make_server(host, port, app, threaded=True)
    print(f"READY {host} {port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
