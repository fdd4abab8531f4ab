#!/usr/bin/python3
"""Replay TCP segments captured on the path (a pcap written by tcpdump), as an attacker who saw them.

usage:
  replay.py --pcap F --from-src IP --dport P [--select syn|pure-ack|stream] [--new-src IP]
            [--as-rst] [--gap-ms N] [--dry-run]

Selects the segments of ONE connection: the first SYN from --from-src to port --dport fixes the
client port; then
  syn       that SYN
  pure-ack  the first segment with only ACK set and no payload (the handshake's last ACK)
  stream    every segment of the connection from the client, in capture order
and sends each as it was captured, label and all, except for:
  --new-src IP   the source address (another host replaying it: the attacker's own address)
  --as-rst       flags set to RST alone (an RST forged from an observed segment: same seq,
                 same ack field, same label)
The IP and TCP checksums are recomputed here, on the bytes (no scapy re-encoding), so the
segment is otherwise byte for byte the captured one. IPv4 and IPv6 (without extension headers).

Sent as an Ethernet frame on an AF_PACKET socket of the routed interface (lab/peers/forge.py's
send_packet_frame): this namespace's netfilter never sees it, so a local agent cannot label it.

Prints one JSON line: {"sent": N, "sport": P, "segments": [{"seq", "ack", "flags", "len", "label_hex"}]}.
"""
import argparse
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from forge import send_packet_frame  # noqa: E402
import labelv1  # noqa: E402

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


def read_pcap(path: str):
    """The IP packets of a classic pcap file (what `tcpdump -w` writes): Ethernet, cooked or raw IP."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        sys.exit(f"replay.py: {path} is not a pcap file (pcapng is not read here)")
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0xFFFF
    skip = {1: 14, 113: 16, 101: 0, 228: 0, 229: 0}.get(linktype)
    if skip is None:
        sys.exit(f"replay.py: link type {linktype} is not read here")
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1 and frame[12:14] == b"\x81\x00":
            frame = frame[4:]  # one VLAN tag
        yield frame[skip:]


def tcp_view(raw: bytes):
    """(ip header length, family) if raw is TCP over IPv4/IPv6 without extension headers, else None."""
    v = raw[0] >> 4
    if v == 4 and raw[9] == 6:
        return (raw[0] & 0x0F) * 4, 4
    if v == 6 and raw[6] == 6:
        return 40, 6
    return None


def addr(raw: bytes, fam: int, which: str) -> str:
    import ipaddress

    if fam == 4:
        b = raw[12:16] if which == "src" else raw[16:20]
    else:
        b = raw[8:24] if which == "src" else raw[24:40]
    return str(ipaddress.ip_address(b))


def rewrite(raw: bytes, ihl: int, fam: int, new_src, as_rst: bool) -> bytes:
    import ipaddress

    b = bytearray(raw)
    if new_src:
        nb = ipaddress.ip_address(new_src).packed
        if (fam == 4) != (len(nb) == 4):
            sys.exit("replay.py: --new-src is not of the captured packet's family")
        if fam == 4:
            b[12:16] = nb
        else:
            b[8:24] = nb
    if as_rst:
        b[ihl + 13] = TCP_RST
    end = struct.unpack("!H", b[2:4])[0] if fam == 4 else 40 + struct.unpack("!H", b[4:6])[0]
    return labelv1.with_segment(bytes(b[:ihl]), bytes(b[ihl:end]))


def label_hex(raw: bytes, ihl: int) -> str:
    """The option 253 of a segment (hex), or ''."""
    doff = (raw[ihl + 12] >> 4) * 4
    opts = raw[ihl + 20:ihl + doff]
    i = 0
    while i < len(opts):
        k = opts[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            break
        n = opts[i + 1]
        if k == 253:
            return opts[i:i + n].hex()
        i += n
    return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--from-src", required=True)
    ap.add_argument("--dport", type=int, required=True)
    ap.add_argument("--select", choices=["syn", "pure-ack", "stream"], default="stream")
    ap.add_argument("--new-src")
    ap.add_argument("--as-rst", action="store_true")
    ap.add_argument("--gap-ms", type=float, default=1.0, help="pause between segments of a stream")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()

    import ipaddress

    want_src = str(ipaddress.ip_address(a.from_src))
    sport = None
    picked = []
    for raw in read_pcap(a.pcap):
        if len(raw) < 40:
            continue
        v = tcp_view(raw)
        if v is None:
            continue
        ihl, fam = v
        if addr(raw, fam, "src") != want_src:
            continue
        sp, dp = struct.unpack("!HH", raw[ihl:ihl + 4])
        if dp != a.dport:
            continue
        flags = raw[ihl + 13]
        if sport is None:
            if flags & (TCP_SYN | TCP_ACK) != TCP_SYN:
                continue
            sport = sp
        if sp != sport:
            continue
        doff = (raw[ihl + 12] >> 4) * 4
        total = struct.unpack("!H", raw[2:4])[0] if fam == 4 else 40 + struct.unpack("!H", raw[4:6])[0]
        plen = total - ihl - doff
        if a.select == "syn" and flags & (TCP_SYN | TCP_ACK) != TCP_SYN:
            continue
        if a.select == "pure-ack" and (flags & 0x3F != TCP_ACK or plen != 0):
            continue
        picked.append((raw, ihl, fam, flags, plen))
        if a.select != "stream":
            break
    if not picked:
        sys.exit(f"replay.py: no {a.select} segment from {want_src} to port {a.dport} in {a.pcap}")

    out = []
    dst = None
    for i, (raw, ihl, fam, flags, plen) in enumerate(picked):
        pkt = rewrite(raw, ihl, fam, a.new_src, a.as_rst)
        dst = addr(pkt, fam, "dst")
        seq, ack = struct.unpack("!II", pkt[ihl + 4:ihl + 12])
        out.append({"seq": seq, "ack": ack, "flags": pkt[ihl + 13], "len": plen, "label_hex": label_hex(pkt, ihl)})
        if not a.dry_run:
            send_packet_frame(pkt, dst, None, None, 1)
            if a.gap_ms and i + 1 < len(picked):
                time.sleep(a.gap_ms / 1000)
    print(json.dumps({"sent": 0 if a.dry_run else len(picked), "sport": sport, "dst": dst, "segments": out}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
