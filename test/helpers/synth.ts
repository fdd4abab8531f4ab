// Synthetic captures for tests, fixtures and the benchmark (not product code): a deterministic mix of
// labelled, unlabelled, tampered, malformed and non-TCP frames.
import { createHash } from 'node:crypto';
import { compat } from '../../src/label/compat.js';
import type { LabelKey } from '../../src/label/keys.js';
import { labelWith, verifyWith, type Verdict } from '../../src/label/profile.js';
import { finishChecksum, ipv4HeaderChecksum, onesSum } from '../../src/wire/checksum.js';
import { buildTcpPacket, buildUdpPacket, fixChecksums, typicalSynOptions } from '../../src/wire/build.js';
import {
  LINKTYPE_ETHERNET,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_LOOP,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
} from '../../src/pcap/linktypes.js';

/** Deterministic pseudo-random bytes (SHA-256 in counter mode) so fixtures are reproducible. */
export function detBytes(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0, c = 0; i < n; c++) {
    const h = createHash('sha256').update(`${seed}:${c}`).digest();
    h.copy(out, i, 0, Math.min(32, n - i));
    i += 32;
  }
  return out;
}

/** Wraps an IP packet in a link-layer frame of the given type. vlanTags applies to Ethernet only. */
export function wrapIp(linktype: number, ip: Uint8Array, vlanTags: number[] = []): Buffer {
  const v6 = ip.length > 0 && ip[0]! >> 4 === 6;
  const et = v6 ? 0x86dd : 0x0800;
  switch (linktype) {
    case LINKTYPE_ETHERNET: {
      const h = Buffer.alloc(14 + 4 * vlanTags.length);
      Buffer.from('020000000002020000000001', 'hex').copy(h, 0);
      let off = 12;
      vlanTags.forEach((tag, i) => {
        h.writeUInt16BE(i === 0 && vlanTags.length > 1 ? 0x88a8 : 0x8100, off);
        h.writeUInt16BE(tag & 0x0fff, off + 2);
        off += 4;
      });
      h.writeUInt16BE(et, off);
      return Buffer.concat([h, ip]);
    }
    case LINKTYPE_RAW:
    case LINKTYPE_IPV4:
    case LINKTYPE_IPV6:
      return Buffer.from(ip);
    case LINKTYPE_LINUX_SLL: {
      const h = Buffer.alloc(16);
      h.writeUInt16BE(4, 0); // sent by us
      h.writeUInt16BE(1, 2); // ARPHRD_ETHER
      h.writeUInt16BE(6, 4);
      Buffer.from('020000000001', 'hex').copy(h, 6);
      h.writeUInt16BE(et, 14);
      return Buffer.concat([h, ip]);
    }
    case LINKTYPE_LINUX_SLL2: {
      const h = Buffer.alloc(20);
      h.writeUInt16BE(et, 0);
      h.writeUInt32BE(2, 4); // ifindex
      h.writeUInt16BE(1, 8);
      h[10] = 4;
      h[11] = 6;
      Buffer.from('020000000001', 'hex').copy(h, 12);
      return Buffer.concat([h, ip]);
    }
    case LINKTYPE_NULL: {
      const h = Buffer.alloc(4);
      h.writeUInt32LE(v6 ? 30 : 2, 0);
      return Buffer.concat([h, ip]);
    }
    case LINKTYPE_LOOP: {
      const h = Buffer.alloc(4);
      h.writeUInt32BE(v6 ? 24 : 2, 0);
      return Buffer.concat([h, ip]);
    }
    default:
      throw new RangeError(`cannot wrap for link type ${linktype}`);
  }
}

/** An ARP request frame (Ethernet), a typical non-IP frame. */
export function arpFrame(): Buffer {
  // Ethernet broadcast, EtherType 0x0806; who-has 192.0.2.2 tell 192.0.2.1.
  return Buffer.from('ffffffffffff020000000001' + '0806' + '0001080006040001' + '020000000001c0000201' + '000000000000c0000202', 'hex');
}

export interface DemoPacket {
  /** The IP packet. */
  ip: Buffer;
  /** The verdict `pcap verify` must give it with the demo key. */
  expect: Verdict;
  /** Why, for humans reading the fixture. */
  note: string;
}

/** An IPv4 ICMP echo request with correct checksums. */
export function icmpEcho(): Buffer {
  const p = Buffer.alloc(20 + 16);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 1;
  Buffer.from([192, 0, 2, 1, 192, 0, 2, 2]).copy(p, 12);
  p.writeUInt16BE(ipv4HeaderChecksum(p, 0, 20), 10);
  p[20] = 8;
  p.writeUInt16BE(0x4c57, 24);
  p.writeUInt16BE(1, 26);
  Buffer.from('labelwal').copy(p, 28);
  p.writeUInt16BE(finishChecksum(onesSum(p, 20, 16)), 22);
  return p;
}

/**
 * A small mixed conversation: labelled segments (v4 and v6), an unlabelled SYN with ordinary
 * options, a segment with someone else's kind-253 experiment, a tampered payload, a forged
 * label, a truncated label, a bad data offset, an IPv4 fragment, UDP and ICMP.
 */
export function demoPackets(key: LabelKey): DemoPacket[] {
  const out: DemoPacket[] = [];
  const lab = (p: Buffer): Buffer => {
    const r = labelWith(compat, p, key); // the fixtures below are compat packets
    if (!r.ok) throw new Error(`demo packet could not be labelled: ${r.reason}`);
    return r.packet;
  };
  const c = { srcPort: 43210, dstPort: 80 };
  out.push({
    ip: lab(buildTcpPacket({ family: 4, ...c, seq: 1000, flags: 0x02, options: typicalSynOptions(7) })),
    expect: 'valid',
    note: 'labelled SYN (options replaced by the label)',
  });
  out.push({
    ip: lab(
      buildTcpPacket({ family: 4, ...c, seq: 1001, ack: 5001, flags: 0x18, payload: Buffer.from('GET / HTTP/1.1\r\nHost: demo\r\n\r\n') }),
    ),
    expect: 'valid',
    note: 'labelled HTTP request',
  });
  out.push({
    ip: lab(buildTcpPacket({ family: 6, ...c, seq: 77, ack: 1, flags: 0x18, payload: detBytes('v6', 1200) })),
    expect: 'valid',
    note: 'labelled IPv6 segment',
  });
  out.push({
    ip: buildTcpPacket({ family: 4, srcPort: 80, dstPort: 43210, seq: 5000, ack: 1001, flags: 0x12, options: typicalSynOptions(9, 7) }),
    expect: 'unlabelled',
    note: 'unlabelled SYN-ACK from a label-unaware peer',
  });
  out.push({
    ip: buildTcpPacket({
      family: 4,
      ...c,
      seq: 9,
      options: Uint8Array.of(253, 12, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8),
      payload: Buffer.from('other experiment'),
    }),
    expect: 'unlabelled',
    note: "option 253 with someone else's ExID",
  });
  const tampered = lab(
    buildTcpPacket({ family: 4, ...c, seq: 1031, ack: 5001, flags: 0x18, payload: Buffer.from('transfer 10 EUR to alice') }),
  );
  tampered[tampered.length - 5]! ^= 0x01; // "alice" -> "`lice": payload changed after labelling
  fixChecksums(tampered); // a careful attacker fixes the checksum; only the label notices
  out.push({ ip: tampered, expect: 'invalid', note: 'labelled, then payload changed in transit' });
  const forged = buildTcpPacket({
    family: 4,
    ...c,
    seq: 2000,
    flags: 0x18,
    options: Uint8Array.of(253, 40, 0x46, 0x77, 0, 0, 0, 0, ...detBytes('forged', 32)),
    payload: Buffer.from('forged label'),
  });
  out.push({ ip: forged, expect: 'invalid', note: 'label with a MAC made without the key' });
  const seqChanged = lab(buildTcpPacket({ family: 6, ...c, seq: 3000, flags: 0x18, payload: Buffer.from('replay me') }));
  seqChanged[40 + 7]! ^= 0x80;
  fixChecksums(seqChanged);
  out.push({ ip: seqChanged, expect: 'invalid', note: 'labelled, then sequence number changed' });
  out.push({
    ip: buildTcpPacket({ family: 4, ...c, seq: 4000, options: Uint8Array.of(253, 36, 0x46, 0x77, ...new Array(32).fill(0)) }),
    expect: 'malformed',
    note: 'our ExID with length 36',
  });
  const badDo = buildTcpPacket({ family: 4, ...c, seq: 4001, payload: Buffer.from('x') });
  badDo[32] = 0x30;
  out.push({ ip: badDo, expect: 'malformed', note: 'TCP data offset 3' });
  const frag = buildTcpPacket({ family: 4, ...c, seq: 4002, dontFragment: false, payload: detBytes('frag', 64) });
  frag.writeUInt16BE(0x2000, 6);
  frag.writeUInt16BE(ipv4HeaderChecksum(frag, 0, 20), 10);
  out.push({ ip: frag, expect: 'malformed', note: 'IPv4 first fragment (MF set)' });
  out.push({ ip: buildUdpPacket({ family: 4, srcPort: 5353, dstPort: 53, payload: Buffer.from('dns?') }), expect: 'skipped', note: 'UDP' });
  out.push({ ip: icmpEcho(), expect: 'skipped', note: 'ICMP (protocol 1)' });
  // Self-check: the notes above must match what the verifier says.
  for (const p of out) {
    const v = verifyWith(compat, p.ip, [key]).verdict;
    if (v !== p.expect) throw new Error(`demo packet "${p.note}": expected ${p.expect}, verifier says ${v}`);
  }
  return out;
}
