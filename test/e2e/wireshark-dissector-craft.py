#!/usr/bin/python3
# Writes a capture of v1-labelled TCP frames for wireshark-dissector.test.ts, built with scapy
# straight from the v1 wire format in the issue / docs/label-v1.md, not from labelwall's code
# nor from the dissector under test:
#   byte 0 kind 253, 1 length 20 (full) or 16 (compact), 2-3 ExID 0x4677,
#   4 = version (bits 7-6) | S (5) | D (4) | P (3) | key id (2-0), 5 epoch8 = E mod 256,
#   6-7 app tag big-endian, 8.. the MAC (12 bytes full, 8 compact).
# Input (argv[1], JSON): {"out": PATH, "frames": [FRAME...]}; a FRAME has time (unix s), family
# (4|6), src, dst, sport, dport, seq, ack, flags (scapy string), payload (hex), and options: a
# list in wire order of {"v1": {...}} | {"raw": HEX} | {"mss": N} | {"wscale": N} |
# {"sackok": true} | {"ts": [VAL, ECR]} | {"sack": [[L, R], ...]} | {"nop": true}.
# A v1 entry: form (full|compact), version (default 1), s, d, p (0|1), key_id, epoch_offset
# (E = floor(time / 16) + epoch_offset), tag, mac (hex, at least the form's MAC length).
import json
import math
import sys

from scapy.all import IP, IPv6, TCP, Ether, Raw, wrpcap  # noqa: E402

KIND, EXID = 253, 0x4677


def v1_option(v, time):
    full = v['form'] == 'full'
    length, maclen = (20, 12) if full else (16, 8)
    e = math.floor(time / 16) + v.get('epoch_offset', 0)
    b4 = (v.get('version', 1) << 6) | (v['s'] << 5) | (v['d'] << 4) | (v['p'] << 3) | v['key_id']
    mac = bytes.fromhex(v['mac'])[:maclen]
    assert len(mac) == maclen, 'mac too short'
    return bytes([KIND, length, EXID >> 8, EXID & 0xFF, b4, e % 256, v['tag'] >> 8, v['tag'] & 0xFF]) + mac


def options_bytes(opts, time):
    # Raw option bytes, so that kind 253 and any length go on the wire exactly as described.
    out = b''
    for o in opts:
        if 'v1' in o:
            out += v1_option(o['v1'], time)
        elif 'raw' in o:
            out += bytes.fromhex(o['raw'])
        elif 'mss' in o:
            out += bytes([2, 4]) + o['mss'].to_bytes(2, 'big')
        elif 'wscale' in o:
            out += bytes([3, 3, o['wscale']])
        elif 'sackok' in o:
            out += bytes([4, 2])
        elif 'ts' in o:
            out += bytes([8, 10]) + o['ts'][0].to_bytes(4, 'big') + o['ts'][1].to_bytes(4, 'big')
        elif 'sack' in o:
            blocks = b''.join(l.to_bytes(4, 'big') + r.to_bytes(4, 'big') for l, r in o['sack'])
            out += bytes([5, 2 + len(blocks)]) + blocks
        elif 'nop' in o:
            out += bytes([1])
        else:
            raise ValueError('unknown option ' + json.dumps(o))
    assert len(out) % 4 == 0, 'options must fill whole 32-bit words: %d bytes' % len(out)
    assert len(out) <= 40, 'options longer than 40 bytes: %d' % len(out)
    return out


def frame(f):
    opts = options_bytes(f['options'], f['time'])
    ip = IP(src=f['src'], dst=f['dst']) if f['family'] == 4 else IPv6(src=f['src'], dst=f['dst'])
    tcp = TCP(sport=f['sport'], dport=f['dport'], seq=f['seq'], ack=f['ack'], flags=f['flags'], window=64240,
              dataofs=5 + len(opts) // 4)
    # scapy's own option encoder would rewrite unknown kinds; the bytes go in as the header's tail.
    pkt = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02') / ip / (tcp / Raw(opts + bytes.fromhex(f.get('payload', ''))))
    # Rebuild so the checksums and lengths cover the options that were appended as raw bytes.
    pkt = Ether(bytes(pkt))
    pkt.time = f['time']
    return pkt


def main():
    spec = json.loads(open(sys.argv[1]).read())
    wrpcap(spec['out'], [frame(f) for f in spec['frames']])


if __name__ == '__main__':
    main()
