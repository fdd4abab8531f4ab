#!/usr/bin/env python3
"""Known-answer vectors for the labelwall v1 label profile (docs/label-v1.md, issue 9).

Written from the spec alone, independently of the TypeScript: every packet is assembled
byte by byte with struct, M and K_tag exactly as the spec lists them, HMAC-SHA256 from
Python's hmac/hashlib, the Internet checksum from RFC 1071. Each vector gives the unlabelled
input packet, the labelled packet a v1 labeller must produce from it (the layout is the one
docs/label-v1.md documents: label first, then the stack's options in order with their NOPs,
trimmed or removed per the documented order, EOL padding), and the intermediate values.

Run: python3 test/vectors/v1/make-vectors.py > test/vectors/v1/vectors.json
"""
import hashlib
import hmac
import ipaddress
import json
import struct
import sys

import os

# The spec's pieces (K_tag, canonical options, M, the checksum) are the Python v1 of the lab
# (lab/peers/labelv1.py), written from the spec like this file: one second implementation.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'lab', 'peers'))
from labelv1 import EOL, EXID, KIND, NOP, canonical, checksum, k_tag, make_m  # noqa: E402


def addr(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


# ---- options, as a stack writes them -------------------------------------------------------
def mss(v):
    return struct.pack('!BBH', 2, 4, v)


def wscale(s):
    return struct.pack('!BBB', 3, 3, s)


SACKOK = bytes([4, 2])


def ts(val, ecr):
    return struct.pack('!BBII', 8, 10, val, ecr)


def sack(*blocks):
    return bytes([5, 2 + 8 * len(blocks)]) + b''.join(struct.pack('!II', a, b) for a, b in blocks)


def tfo(cookie: bytes):
    return bytes([34, 2 + len(cookie)]) + cookie


N = bytes([NOP])
LABEL = object()  # where the label goes in an expected layout


def tcp_header(sport, dport, seq, ack, flags, window, urgent, options: bytes, low4=0) -> bytearray:
    """low4: the low 4 bits of byte 12 (3 reserved bits and AE, RFC 9768), covered by M as sent."""
    assert len(options) % 4 == 0 and len(options) <= 40
    doff = (20 + len(options)) // 4
    return bytearray(struct.pack('!HHIIBBHHH', sport, dport, seq, ack, doff << 4 | low4, flags, window, 0, urgent) + options)


def ip_packet(family, src, dst, tcp: bytearray, payload: bytes, routing=None) -> bytes:
    """IPv4 (no options) or IPv6 (optionally a type-0 routing header whose last address is the final destination)."""
    seg = bytearray(tcp) + payload
    if family == 4:
        pseudo = src + dst + struct.pack('!BBH', 0, 6, len(seg))
    else:
        final = routing[-1] if routing else dst
        pseudo = src + final + struct.pack('!IxxxB', len(seg), 6)
    struct.pack_into('!H', seg, 16, checksum(pseudo + bytes(seg)))
    if family == 4:
        total = 20 + len(seg)
        ip = bytearray(struct.pack('!BBHHHBBH4s4s', 0x45, 0, total, 0x1234, 0x4000, 64, 6, 0, src, dst))
        struct.pack_into('!H', ip, 10, checksum(bytes(ip)))
        return bytes(ip) + bytes(seg)
    ext = b''
    nh = 6
    if routing:
        # Routing header type 0: next header, hdr ext len (8-octet units beyond the first), type, segments left, reserved, addresses.
        ext = struct.pack('!BBBBI', 6, 2 * len(routing), 0, len(routing), 0) + b''.join(routing)
        nh = 43
    ip = struct.pack('!IHBB16s16s', 6 << 28, len(ext) + len(seg), nh, 64, src, dst)
    return ip + ext + bytes(seg)


KEY_A = bytes(range(32))  # key id 0
KEY_B = bytes(range(0xA0, 0xC0))  # used as key id 5
T0 = 1764633600000 + 7000  # 2025-12-02T00:00:07Z, in ms
SRC4, DST4 = addr('192.0.2.1'), addr('198.51.100.2')
SRC6, DST6 = addr('2001:db8::1'), addr('2001:db8::2')
VIA6, FINAL6 = addr('2001:db8::100'), addr('2001:db8::2')

SYN, ACK, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04


def vector(name, family, flags, in_opts: bytes, out_layout, payload=b'', key=KEY_A, key_id=0, tag=0, nat=0,
           compact=False, trimmed=(), seq=0x01020304, ack=0, sport=40000, dport=80, window=64240, routing=None,
           urgent=0, low4=0, note=''):
    s, d, p = bool(nat & 1), bool(nat & 2), bool(nat & 4)
    src, dst = (SRC4, DST4) if family == 4 else ((SRC6, VIA6) if routing else (SRC6, DST6))
    pseudo_dst = routing[-1] if routing else dst
    # input: the options padded with EOL to a multiple of 4 (as stacks do)
    pad = (-len(in_opts)) % 4
    inp = ip_packet(family, src, dst, tcp_header(sport, dport, seq, ack, flags, window, urgent, in_opts + bytes(pad), low4), payload, routing)
    label_len = 16 if compact else 20
    epoch = T0 // 1000 // 16
    b4 = 0x40 | (0x20 if s else 0) | (0x10 if d else 0) | (0x08 if p else 0) | key_id
    head8 = struct.pack('!BBHBBH', KIND, label_len, EXID, b4, epoch & 0xFF, tag)
    # expected options: the layout with a placeholder label, EOL-padded
    def area(label_bytes):
        a = b''.join(label_bytes if o is LABEL else o for o in out_layout)
        return a + bytes((-len(a)) % 4)
    opts0 = area(head8 + bytes(label_len - 8))
    tcp0 = tcp_header(sport, dport, seq, ack, flags, window, urgent, opts0, low4)
    m = make_m(head8, epoch, family, src, pseudo_dst, bytes(tcp0), s, d, p, opts0, payload)
    kt = k_tag(key, key_id, tag)
    mac = hmac.new(kt, m, hashlib.sha256).digest()[:label_len - 8]
    option = head8 + mac
    out_opts = area(option)
    out = ip_packet(family, src, dst, tcp_header(sport, dport, seq, ack, flags, window, urgent, out_opts, low4), payload, routing)
    return {
        'name': name,
        'note': note,
        'family': family,
        'key': key.hex(),
        'keyId': key_id,
        'tag': tag,
        'nat': nat,
        'timeMs': T0,
        'epoch': epoch,
        'input': inp.hex(),
        'expected': out.hex(),
        'option': option.hex(),
        'kTag': kt.hex(),
        'm': m.hex(),
        'mac': mac.hex(),
        'compact': compact,
        # every step the labeller took to make room, in the order of docs/label-v1.md
        'trimmed': list(trimmed),
    }


TS1 = ts(0x0A0B0C0D, 0x01020304)
TSO = N + N + TS1  # Linux's aligned timestamps: NOP NOP TS
DSS4 = bytes([30, 4, 0x20, 0x00])  # MPTCP DSS, no mapping, no ack (RFC 8684 §3.3)
DSS8 = bytes([30, 8, 0x20, 0x01, 0x0A, 0x0B, 0x0C, 0x0D])  # MPTCP DSS with a 4-byte data ACK
SYN_OPTS = [mss(1460), SACKOK, ts(0x11223344, 0), N, wscale(7)]  # Linux's SYN: MSS, SACKOK+TS, NOP WS
B1, B2, B3, B4 = (0x01020F00, 0x01021400), (0x01021800, 0x01021C00), (0x01022000, 0x01022400), (0x01022800, 0x01022C00)

vectors = [
    vector('ipv4-syn', 4, SYN, b''.join(SYN_OPTS), [LABEL, *SYN_OPTS],
           note='SYN with MSS, SACK-permitted, timestamps, window scale: all kept, full label first'),
    vector('ipv6-syn-ack', 6, SYN | ACK, b''.join(SYN_OPTS), [LABEL, *SYN_OPTS], key=KEY_B, key_id=5, tag=300,
           sport=80, dport=40000, seq=0xFEDCBA98, ack=0x01020305, window=65160, note='SYN-ACK, key id 5, tag 300'),
    vector('ipv4-data-ts', 4, ACK | PSH, TSO, [LABEL, TSO], payload=b'hello v1', key=KEY_B, key_id=5, tag=443,
           seq=0x01020305, ack=0xFEDCBA99, window=502, note='data segment with timestamps'),
    vector('ipv6-data-ts', 6, ACK | PSH, TSO, [LABEL, TSO], payload=b'GET / HTTP/1.1\r\n\r\n', key=KEY_B, key_id=5, tag=443,
           seq=0x01020305, ack=0xFEDCBA99, window=502, note='IPv6 data segment with timestamps'),
    vector('ipv4-ack-ts-sack1-packed', 4, ACK, TSO + N + N + sack(B1), [LABEL, TS1, sack(B1)], ack=0x01020F00,
           note='pure ACK, timestamps + 1 SACK block (24 bytes with NOPs): without the NOPs (20) the full label fits'),
    vector('ipv4-ack-ts-sack3-trimmed', 4, ACK, TSO + N + N + sack(B1, B2, B3), [LABEL, TS1, sack(B1)], trimmed=['sack-trimmed'],
           tag=7, ack=0x01020F00, note='timestamps + 3 SACK blocks (40 bytes): SACK trimmed to its first block, NOPs dropped, full label'),
    vector('ipv4-ack-mptcp-compact', 4, ACK, TSO + N + N + sack(B1) + DSS4, [LABEL, TS1, sack(B1), DSS4], compact=True,
           ack=0x01020F00, note='timestamps + 1 SACK block + a 4-byte MPTCP DSS (24 bytes without NOPs): compact label'),
    vector('ipv6-ack-mptcp-sack3-trimmed-compact', 6, ACK, TS1 + sack(B1, B2, B3) + DSS4, [LABEL, TS1, sack(B1), DSS4], compact=True,
           trimmed=['sack-trimmed'], key=KEY_B, key_id=5, tag=300, ack=0x01020F00,
           note='timestamps + 3 SACK blocks + DSS (40 bytes): SACK trimmed to one block, then only the compact label fits'),
    vector('ipv6-ack-sack4-trimmed-full', 6, ACK, N + N + sack(B1, B2, B3, B4), [LABEL, N + N + sack(B1)], trimmed=['sack-trimmed'],
           ack=0x01020F00, note='no timestamps, 4 SACK blocks: trimmed to one, then the full label fits'),
    vector('ipv4-syn-fastopen-removed', 4, SYN, b''.join(SYN_OPTS) + tfo(bytes(range(1, 9))) + N + N, [LABEL, *SYN_OPTS],
           trimmed=['options-removed'], payload=b'early', note='SYN with a Fast Open cookie: the cookie goes (SYNs take only the full label)'),
    vector('ipv4-nat-src', 4, ACK | PSH, TSO, [LABEL, TSO], payload=b'x', nat=1, tag=300,
           note='S: source address out of the MAC'),
    vector('ipv4-nat-src-dst-ports', 4, ACK | PSH, TSO, [LABEL, TSO], payload=b'xyz', nat=7, key=KEY_B, key_id=5, tag=65535,
           note='S, D, P: both addresses and both ports out of the MAC'),
    vector('ipv6-nat-dst-ports', 6, SYN, b''.join(SYN_OPTS), [LABEL, *SYN_OPTS], nat=6, tag=1,
           note='D, P: destination address and port out of the MAC'),
    vector('ipv6-routing-header', 6, ACK | PSH, TSO, [LABEL, TSO], payload=b'routed', routing=[FINAL6], key=KEY_B, key_id=5,
           tag=300, note='routing header (type 0, 1 segment left): M and the checksum use the final destination'),
    vector('ipv4-ack-sack2-mptcp-both-steps', 4, ACK, TS1 + sack(B1, B2) + DSS8, [LABEL, TS1, sack(B1)],
           trimmed=['sack-trimmed', 'options-removed'], ack=0x01020F00,
           note='timestamps + 2 SACK blocks + an 8-byte DSS (36 bytes): SACK trimmed to one block, still too long, the DSS goes, full label'),
    vector('ipv6-urgent-ae-key7', 6, ACK | PSH | 0x20, TSO, [LABEL, TSO], payload=b'!urgent', key=KEY_B, key_id=7, tag=2,
           urgent=1, low4=0x01, note='URG with urgent pointer 1, the AE bit set in byte 12, key id 7: all covered as sent'),
    vector('ipv4-rst-no-options', 4, RST | ACK, b'', [LABEL], seq=0x01020305, ack=0xFEDCBA99, window=0,
           note='RST without options: the label is the only option'),
]

json.dump({'spec': 'docs/label-v1.md', 'generator': 'test/vectors/v1/make-vectors.py', 'vectors': vectors}, sys.stdout, indent=1)
sys.stdout.write('\n')
