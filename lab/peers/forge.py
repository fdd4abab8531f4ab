#!/usr/bin/python3
"""Forge TCP segments into an established flow (scapy), with or without a labelwall label.

The labels are implemented here independently of the TypeScript code, as a cross-check:
compat (default, --profile compat):
  option = 253, 40, 0x46 0x77 (ExID), 0 0 0 0, HMAC-SHA256(key, seq as 4 bytes BE || payload)
  and it is the only TCP option (header = 60 bytes);
v1 (--profile v1 [--key-id N] [--tag N] [--nat BITS]): the 20-byte label of docs/label-v1.md,
  from labelv1.py (epoch from this host's clock).

usage:
  forge.py inject KIND --src IP --dst IP --sport P --dport P --seq N --ack N [options]
  forge.py label --key-hex K --seq N (--payload-hex H | --payload TEXT)   print the 40-byte option as hex

KIND:
  nolabel   no option at all
  wrongkey  label computed with --wrong-key-hex (default: SHA-256("labelwall-wrong-key"))
  tampered  label computed with --key-hex over the payload, then payload bytes changed
  replay    a label that is valid for ANOTHER segment (--replay-seq, default seq+100000, and
            --replay-payload-hex, default a different payload), copied onto this one;
            or --replay-label-hex to copy a label captured elsewhere
  valid     a correct label under --key-hex (positive control); `--label-with KEYHEX` is
            shorthand for `valid --key-hex KEYHEX`

Options:
  --payload TEXT / --payload-hex H   payload (default: b"FORGED-<KIND>-" padded to --size bytes)
  --size N                           default payload size (default 64)
  --flags F                          TCP flags (default PA)
  --count N                          send the segment N times (default 1)
  --via packet|raw                   packet (default): AF_PACKET frame on the routed interface,
                                     like scapy's conf.L3socket; bypasses this namespace's own
                                     netfilter hooks (models malware on the host or an attacker
                                     on the wire). raw: AF_INET/AF_INET6 raw socket, traverses
                                     this namespace's OUTPUT/POSTROUTING (a local agent sees it).
  --iface IF                         interface for --via packet (default: from `ip route get`)
  --dst-mac MAC                      next-hop MAC (default: kernel neighbour table, else ARP/ND)
  --dry-run                          build and print the segment, send nothing

Where seq/ack come from: the test drives lab/peers/flow_client.py, whose `seq` command reads
snd_nxt / rcv_nxt of the live socket with TCP_REPAIR; pass them as --seq / --ack so the forged
segment lands exactly at the receiver's next expected byte.

Prints one JSON line describing what was sent (including the full segment as hex).
"""
import argparse
import hashlib
import hmac
import json
import socket
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import labelv1  # noqa: E402

LABEL_KIND = 253
LABEL_LEN = 40
LABEL_EXID = b"\x46\x77"


def compat_mac(key: bytes, seq: int, payload: bytes) -> bytes:
    return hmac.new(key, seq.to_bytes(4, "big") + payload, hashlib.sha256).digest()


def compat_option(key: bytes, seq: int, payload: bytes) -> bytes:
    opt = bytes([LABEL_KIND, LABEL_LEN]) + LABEL_EXID + b"\0\0\0\0" + compat_mac(key, seq, payload)
    assert len(opt) == LABEL_LEN
    return opt


def hexbytes(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", "").replace(" ", ""))


def build_segment(a, kind: str):
    """Returns (scapy packet, description dict)."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import Raw

    if a.payload_hex is not None:
        payload = hexbytes(a.payload_hex)
    elif a.payload is not None:
        payload = a.payload.encode()
    else:
        marker = f"FORGED-{kind.upper()}-".encode()
        payload = (marker * (a.size // len(marker) + 1))[: a.size]

    seq = a.seq % 2**32
    key = hexbytes(a.key_hex) if a.key_hex else None
    option = None
    sent_payload = payload
    info = {}
    if kind == "nolabel":
        pass
    elif kind == "wrongkey":
        wrong = hexbytes(a.wrong_key_hex) if a.wrong_key_hex else hashlib.sha256(b"labelwall-wrong-key").digest()
        option = compat_option(wrong, seq, payload)
    elif kind in ("tampered", "valid", "replay"):
        if key is None:
            sys.exit(f"forge.py: {kind} needs --key-hex (the key the verifier accepts)")
        if kind == "valid":
            option = compat_option(key, seq, payload)
        elif kind == "tampered":
            option = compat_option(key, seq, payload)
            b = bytearray(payload)
            for i in range(0, len(b), max(1, len(b) // 4)):  # several bytes, spread out
                b[i] ^= 0x5A
            sent_payload = bytes(b)
            info["labelled_payload_hex"] = payload.hex()
        else:  # replay
            if a.replay_label_hex:
                option = hexbytes(a.replay_label_hex)
                if len(option) != LABEL_LEN or option[0] != LABEL_KIND:
                    sys.exit("forge.py: --replay-label-hex must be a 40-byte option starting with fd28")
            else:
                rseq = (a.replay_seq if a.replay_seq is not None else seq + 100000) % 2**32
                rpay = hexbytes(a.replay_payload_hex) if a.replay_payload_hex else b"ORIGINAL-" + payload[9:]
                if rseq == seq and rpay == payload:
                    sys.exit("forge.py: replay source equals the target segment; that is just `valid`")
                option = compat_option(key, rseq, rpay)
                info["label_source"] = {"seq": rseq, "payload_hex": rpay.hex()}
    else:
        sys.exit(f"forge.py: unknown kind {kind}")

    if a.profile == "v1":
        return build_v1(a, kind, seq, key, payload, info)

    ip = IPv6(src=a.src, dst=a.dst) if ":" in a.dst else IP(src=a.src, dst=a.dst)
    tcp = TCP(sport=a.sport, dport=a.dport, seq=seq, ack=a.ack % 2**32, flags=a.flags, window=a.window)
    if option is not None:
        # Raw option bytes: kind/len come from scapy's (kind, value) encoding: value is the 38 bytes after them.
        tcp.options = [(LABEL_KIND, option[2:])]
    pkt = ip / tcp / Raw(sent_payload) if sent_payload else ip / tcp
    raw = bytes(pkt)
    # Self-check the encoding scapy produced: the label is the only option, header is 60 bytes.
    ihl = 40 if ":" in a.dst else (raw[0] & 0x0F) * 4
    doff = (raw[ihl + 12] >> 4) * 4
    if option is not None:
        assert doff == 60 and raw[ihl + 20 : ihl + 60] == option, "scapy encoded the label option unexpectedly"
    else:
        assert doff == 20
    info.update(
        kind=kind,
        src=a.src, dst=a.dst, sport=a.sport, dport=a.dport, seq=seq, ack=a.ack % 2**32,
        payload_hex=sent_payload.hex(),
        option_hex=option.hex() if option else None,
        packet_hex=raw.hex(),
    )
    return raw, info


def build_v1(a, kind: str, seq: int, key, payload: bytes, info: dict):
    """The same forgeries with v1 labels: the label first, no other option."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.packet import Raw

    def plain(seq_: int, pay: bytes) -> bytes:
        ip = IPv6(src=a.src, dst=a.dst) if ":" in a.dst else IP(src=a.src, dst=a.dst)
        tcp = TCP(sport=a.sport, dport=a.dport, seq=seq_, ack=a.ack % 2**32, flags=a.flags, window=a.window)
        return bytes(ip / tcp / Raw(pay) if pay else ip / tcp)

    def label(raw: bytes, k: bytes) -> bytes:
        return labelv1.label_packet(raw, k, a.key_id, a.tag, a.nat, time.time())

    ihl = 40 if ":" in a.dst else 20
    sent_payload = payload
    if kind == "nolabel":
        raw = plain(seq, payload)
    elif kind == "wrongkey":
        wrong = hexbytes(a.wrong_key_hex) if a.wrong_key_hex else hashlib.sha256(b"labelwall-wrong-key").digest()
        raw = label(plain(seq, payload), wrong)
    elif kind == "valid":
        raw = label(plain(seq, payload), key)
    elif kind == "tampered":
        good = bytearray(label(plain(seq, payload), key))
        b = bytearray(payload)
        for i in range(0, len(b), max(1, len(b) // 4)):
            b[i] ^= 0x5A
        sent_payload = bytes(b)
        raw = relabel(bytes(good), ihl, option=None, payload=sent_payload)
        info["labelled_payload_hex"] = payload.hex()
    else:  # replay: the label of another segment, copied onto this one
        if a.replay_label_hex:
            option = hexbytes(a.replay_label_hex)
        else:
            rseq = (a.replay_seq if a.replay_seq is not None else seq + 100000) % 2**32
            rpay = hexbytes(a.replay_payload_hex) if a.replay_payload_hex else b"ORIGINAL-" + payload[9:]
            src = label(plain(rseq, rpay), key)
            option = src[ihl + 20:ihl + 40]
            info["label_source"] = {"seq": rseq, "payload_hex": rpay.hex()}
        raw = relabel(label(plain(seq, payload), key), ihl, option=option, payload=payload)
    opt = raw[ihl + 20:ihl + (raw[ihl + 12] >> 4) * 4]
    info.update(
        kind=kind, profile="v1",
        src=a.src, dst=a.dst, sport=a.sport, dport=a.dport, seq=seq, ack=a.ack % 2**32,
        payload_hex=sent_payload.hex(),
        option_hex=opt.hex() if opt else None,
        packet_hex=raw.hex(),
    )
    return raw, info


def relabel(raw: bytes, ihl: int, option, payload: bytes) -> bytes:
    """A labelled packet with its first option replaced by `option` and/or its payload by `payload`;
    lengths and checksums fixed so the forgery reaches the verifier as a well-formed segment."""
    doff = (raw[ihl + 12] >> 4) * 4
    hdr = bytearray(raw[ihl:ihl + doff])
    if option is not None:
        hdr[20:20 + len(option)] = option
    return labelv1.with_segment(raw[:ihl], bytes(hdr) + payload)


def ip_json(args):
    out = subprocess.run(["ip", "-j"] + args, capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def next_hop(dst: str):
    r = ip_json(["route", "get", dst])[0]
    return r["dev"], r.get("gateway", dst)


def neighbour_mac(dev: str, nh: str):
    for n in ip_json(["neigh", "show", "to", nh, "dev", dev]):
        if n.get("lladdr"):
            return n["lladdr"]
    return None


def send_packet_frame(raw: bytes, dst: str, iface, dst_mac, count: int):
    dev, nh = next_hop(dst)
    iface = iface or dev
    mac = dst_mac or neighbour_mac(iface, nh)
    if mac is None:
        # Not in the kernel table: let scapy resolve it (ARP / ND), as conf.L3socket would.
        if ":" in nh:
            from scapy.layers.inet6 import getmacbyip6
            mac = getmacbyip6(nh)
        else:
            from scapy.layers.l2 import getmacbyip
            mac = getmacbyip(nh)
        if mac is None:
            sys.exit(f"forge.py: cannot resolve the MAC of next hop {nh} on {iface}")
    with open(f"/sys/class/net/{iface}/address") as f:
        src_mac = f.read().strip()
    ethertype = b"\x86\xdd" if ":" in dst else b"\x08\x00"
    frame = bytes.fromhex(mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + ethertype + raw
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for _ in range(count):
        s.send(frame)
    s.close()
    return {"iface": iface, "next_hop": nh, "dst_mac": mac}


def send_raw_socket(raw: bytes, dst: str, count: int):
    if ":" in dst:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)  # header included
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    for _ in range(count):
        s.sendto(raw, (dst, 0))
    s.close()
    return {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    lab = sub.add_parser("label", help="print the compat label option (hex) for a key, seq and payload")
    lab.add_argument("--key-hex", required=True)
    lab.add_argument("--seq", type=int, required=True)
    lab.add_argument("--payload-hex")
    lab.add_argument("--payload")

    inj = sub.add_parser("inject", help="send a forged segment")
    inj.add_argument("kind", nargs="?", choices=["nolabel", "wrongkey", "tampered", "replay", "valid"])
    inj.add_argument("--label-with", metavar="KEYHEX", help="shorthand for: valid --key-hex KEYHEX")
    for name in ("--src", "--dst"):
        inj.add_argument(name, required=True)
    for name in ("--sport", "--dport", "--seq", "--ack"):
        inj.add_argument(name, type=int, required=True)
    inj.add_argument("--key-hex")
    inj.add_argument("--profile", choices=["compat", "v1"], default="compat")
    inj.add_argument("--key-id", type=int, default=0, help="v1: key id of the label (0-7)")
    inj.add_argument("--tag", type=int, default=0, help="v1: app tag of the label")
    inj.add_argument("--nat", type=int, default=0, help="v1: NAT flags, bits 1=S 2=D 4=P")
    inj.add_argument("--wrong-key-hex")
    inj.add_argument("--replay-seq", type=int)
    inj.add_argument("--replay-payload-hex")
    inj.add_argument("--replay-label-hex")
    inj.add_argument("--payload")
    inj.add_argument("--payload-hex")
    inj.add_argument("--size", type=int, default=64)
    inj.add_argument("--flags", default="PA")
    inj.add_argument("--window", type=int, default=502)
    inj.add_argument("--count", type=int, default=1)
    inj.add_argument("--via", choices=["packet", "raw"], default="packet")
    inj.add_argument("--iface")
    inj.add_argument("--dst-mac")
    inj.add_argument("--dry-run", action="store_true", help="build and print, do not send")
    a = ap.parse_args()

    if a.cmd == "label":
        payload = hexbytes(a.payload_hex) if a.payload_hex is not None else (a.payload or "").encode()
        print(compat_option(hexbytes(a.key_hex), a.seq % 2**32, payload).hex())
        return 0

    kind = a.kind
    if a.label_with:
        if kind not in (None, "valid"):
            sys.exit("forge.py: --label-with makes a valid segment; do not combine it with another kind")
        kind, a.key_hex = "valid", a.label_with
    if kind is None:
        sys.exit("forge.py: give a KIND or --label-with")
    raw, info = build_segment(a, kind)
    if a.dry_run:
        pass
    elif a.via == "packet":
        info.update(send_packet_frame(raw, a.dst, a.iface, a.dst_mac, a.count))
    else:
        info.update(send_raw_socket(raw, a.dst, a.count))
    info.update(via=a.via, count=0 if a.dry_run else a.count)
    print(json.dumps(info), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
