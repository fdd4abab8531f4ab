"""Deterministic test bytes shared by the Python peers (test/helpers/blob.ts is the TS twin).

blob(n, tag) = SHA-256(f"{tag}:{n}:{i}") for i = 0, 1, 2, ... concatenated, cut to n bytes.
Counter-mode SHA-256 is easy to reproduce in any language and never repeats inside a blob,
so a misplaced or duplicated chunk is caught by a byte-for-byte compare.
"""
import hashlib


def blob(n: int, tag: str = "blob") -> bytes:
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{tag}:{n}:{i}".encode()).digest()
        i += 1
    return bytes(out[:n])
