"""ICMP echo requests for the peer scripts (ping sockets and raw sockets)."""
import struct


def icmp_echo(ident, v6=False):
    """An echo request with identifier `ident`, sequence 1 and a short body. For IPv6 the
    checksum stays zero: the kernel fills it in for ICMPv6 sockets."""
    body = struct.pack('!BBHHH', 128 if v6 else 8, 0, 0, ident, 1) + b'labelwall'
    if v6:
        return body
    c = 0
    for i in range(0, len(body), 2):
        c += (body[i] << 8) + (body[i + 1] if i + 1 < len(body) else 0)
    c = (c >> 16) + (c & 0xffff)
    c = ~(c + (c >> 16)) & 0xffff
    return body[:2] + struct.pack('!H', c) + body[4:]
