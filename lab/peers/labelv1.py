"""The v1 label profile in Python, written from its spec (docs/label-v1.md), not from the
TypeScript: the forger (forge.py) makes v1 labels with it, and the known-answer vectors
(test/vectors/v1/make-vectors.py) are computed with it, so both check the TypeScript against
a second implementation.
"""
import hashlib
import hmac
import struct

KIND, EXID = 253, 0x4677
NOP, EOL = 1, 0
FULL, COMPACT = 20, 16
EPOCH_SECONDS = 16


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b'\0'
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def k_tag(key: bytes, key_id: int, tag: int) -> bytes:
    return hmac.new(key, b'labelwall-v1' + bytes([key_id]) + struct.pack('!H', tag), hashlib.sha256).digest()


def canonical(options: bytes) -> bytes:
    """Walk in wire order, stop at EOL, skip NOPs, MSS and the label; keep kind, length, value."""
    out, i = b'', 0
    while i < len(options):
        k = options[i]
        if k == EOL:
            break
        if k == NOP:
            i += 1
            continue
        ln = options[i + 1]
        o = options[i:i + ln]
        is_label = k == KIND and ln >= 4 and struct.unpack('!H', o[2:4])[0] == EXID
        if k != 2 and not is_label:
            out += o
        i += ln
    return out


def make_m(head8, epoch, family, src, dst_pseudo, tcp: bytes, s, d, p, options, payload):
    """M of the spec: option bytes 0-7, E, IP version, addresses, ports, the TCP header fields, options, payload."""
    m = head8 + struct.pack('!I', epoch) + bytes([family])
    m += bytes(len(src)) if s else src
    m += bytes(len(dst_pseudo)) if d else dst_pseudo
    m += b'\0\0' if (s and p) else tcp[0:2]
    m += b'\0\0' if (d and p) else tcp[2:4]
    m += tcp[4:8] + tcp[8:12] + tcp[12:14] + tcp[14:16] + tcp[18:20]
    m += canonical(options)
    m += struct.pack('!H', len(payload)) + payload
    return m


def head8(length: int, nat: int, key_id: int, epoch: int, tag: int) -> bytes:
    b4 = 0x40 | (0x20 if nat & 1 else 0) | (0x10 if nat & 2 else 0) | (0x08 if nat & 4 else 0) | key_id
    return struct.pack('!BBHBBH', KIND, length, EXID, b4, epoch & 0xFF, tag)


def label_packet(raw: bytes, key: bytes, key_id: int = 0, tag: int = 0, nat: int = 0, unix_time: float = 0.0,
                 compact: bool = False) -> bytes:
    """Labels an IPv4 (no IP options) or IPv6 (no extension headers) TCP packet: the label is
    put first in the options area, the stack's options after it, EOL padding; lengths and both
    checksums recomputed. The options must leave room for the label."""
    family = raw[0] >> 4
    ihl = (raw[0] & 0x0F) * 4 if family == 4 else 40
    if family == 6 and raw[6] != 6:
        raise ValueError('IPv6 extension headers are not supported here')
    src, dst = (raw[12:16], raw[16:20]) if family == 4 else (raw[8:24], raw[24:40])
    total = struct.unpack('!H', raw[2:4])[0] if family == 4 else 40 + struct.unpack('!H', raw[4:6])[0]
    tcp = bytearray(raw[ihl:total])
    doff = (tcp[12] >> 4) * 4
    options, payload = bytes(tcp[20:doff]), bytes(tcp[doff:])
    length = COMPACT if compact else FULL
    kept = options.rstrip(b'\0')
    area_len = length + len(kept)
    area_len += (-area_len) % 4
    if area_len > 40:
        raise ValueError('the options leave no room for the label')
    epoch = int(unix_time // EPOCH_SECONDS)
    h8 = head8(length, nat, key_id, epoch, tag)
    area = h8 + bytes(length - 8) + kept
    area += bytes(area_len - len(area))
    hdr = bytearray(tcp[:20])
    hdr[12] = ((20 + area_len) // 4) << 4 | (hdr[12] & 0x0F)
    hdr[16:18] = b'\0\0'
    m = make_m(h8, epoch, family, src, dst, bytes(hdr), bool(nat & 1), bool(nat & 2), bool(nat & 4), area, payload)
    mac = hmac.new(k_tag(key, key_id, tag), m, hashlib.sha256).digest()[:length - 8]
    return with_segment(raw[:ihl], hdr + h8 + mac + area[length:] + payload)


def with_segment(ip_header: bytes, segment: bytes) -> bytes:
    """IPv4 (no options) / IPv6 (no extension headers) header + TCP segment, with the IP length,
    the IPv4 header checksum and the TCP checksum set (the segment's checksum field is ignored)."""
    family = ip_header[0] >> 4
    src, dst = (ip_header[12:16], ip_header[16:20]) if family == 4 else (ip_header[8:24], ip_header[24:40])
    seg = bytearray(segment)
    seg[16:18] = b'\0\0'
    if family == 4:
        pseudo = src + dst + struct.pack('!BBH', 0, 6, len(seg))
    else:
        pseudo = src + dst + struct.pack('!IxxxB', len(seg), 6)
    struct.pack_into('!H', seg, 16, checksum(pseudo + bytes(seg)))
    ip = bytearray(ip_header)
    if family == 4:
        struct.pack_into('!H', ip, 2, len(ip) + len(seg))
        ip[10:12] = b'\0\0'
        struct.pack_into('!H', ip, 10, checksum(bytes(ip)))
    else:
        struct.pack_into('!H', ip, 4, len(seg))
    return bytes(ip) + bytes(seg)
