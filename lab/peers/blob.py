"""Deterministic test bytes shared by the Python peers (src/lab/blob.ts is the TS twin).

blob(n, tag) = the first n bytes of SHAKE-256(f"{tag}:{n}") (an extendable-output hash).
Pseudo-random, so a misplaced or duplicated chunk is caught by a byte-for-byte compare; in
the standard library of both Python and Node; ~250 MB/s, so 100 MB blobs are cheap.
"""
import hashlib


def blob(n: int, tag: str = "blob") -> bytes:
    if n == 0:
        return b""
    return hashlib.shake_256(f"{tag}:{n}".encode()).digest(n)
