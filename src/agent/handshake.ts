// Inbound handshake rewriting on the protected host.
//
// What a handshake needs is the label profile's to say (LabelProfile.handshake). With compat,
// labelled segments carry only the label option, so the peer never sees the window scale,
// SACK-permitted or timestamp options our stack offers; the stack must never believe they were
// negotiated. Outbound, labelling strips them. Inbound, this module erases them from SYN and
// SYN-ACK segments before the local stack reads them (replaced by NOPs, so lengths stay put).
// Either way it lowers the peer's MSS so that our segments still fit the MTU with the label's
// bytes of header more.
import { parseIpPacket } from '../wire/packet.js';
import { l4ChecksumOk, pseudoHeaderSumV4, pseudoHeaderSumV6, tcpChecksumV4, tcpChecksumV6 } from '../wire/checksum.js';
import { TCP_SYN, writeU16 } from '../wire/tcp.js';
import { TCPOPT_EOL, TCPOPT_MSS, TCPOPT_NOP } from '../wire/tcpopts.js';
import type { LabelProfile } from '../label/profile.js';

/** Smallest MSS we hand to the stack (the kernel's own floor is 88 bytes of payload). */
export const MIN_CLAMPED_MSS = 88;

export type HandshakeResult =
  | { kind: 'rewritten'; packet: Buffer; mssBefore?: number; mssAfter?: number; erased: number }
  | { kind: 'unchanged'; reason: 'not-syn' | 'not-tcp' | 'nothing-to-do' | 'bad-checksum' }
  | { kind: 'malformed'; reason: string };

/**
 * The MSS our stack may use towards a peer that advertised `peerMss`, so that a labelled
 * segment (`clamp` bytes more TCP header, the profile's handshake.mssClamp) fits `mtu`:
 * min(peer, what the MTU allows) - clamp, not below MIN_CLAMPED_MSS, and never above the peer's.
 */
export function clampMss(peerMss: number, mtu: number, ipHeaderLen: number, clamp: number): number {
  const fitsMtu = mtu - ipHeaderLen - 20;
  return Math.min(peerMss, Math.max(MIN_CLAMPED_MSS, Math.min(peerMss, fitsMtu) - clamp));
}

/**
 * Rewrites an inbound SYN or SYN-ACK for `profile`: when it erases inbound options, every
 * option except MSS and its label becomes NOP; the MSS is clamped by the profile's amount.
 * `mtu` is the MTU of the interface it came in on. Writes into `out` (which must hold the
 * packet) and returns a view of it. `csumNotReady`: the kernel says the checksum field is not
 * filled in yet (NFQA_SKB_CSUMNOTREADY, a locally made packet); otherwise a SYN whose checksum is
 * wrong is left as it came (the stack drops it), since the rewrite computes a new, correct one.
 */
export function rewriteInboundSyn(profile: LabelProfile, pkt: Uint8Array, mtu: number, out: Buffer, csumNotReady = false): HandshakeResult {
  const p = parseIpPacket(pkt);
  if (!p.ok) return { kind: 'malformed', reason: p.reason };
  const tcp = p.tcp;
  if (!tcp) return { kind: 'unchanged', reason: 'not-tcp' };
  if (!(tcp.flags & TCP_SYN)) return { kind: 'unchanged', reason: 'not-syn' };
  const len = p.totalLen;
  if (out.length < len) return { kind: 'malformed', reason: 'too-large' };
  out.set(pkt.subarray(0, len), 0);

  let erased = 0;
  let mssBefore: number | undefined;
  let mssAfter: number | undefined;
  const { eraseInbound, mssClamp } = profile.handshake;
  const end = tcp.optionsOffset + tcp.optionsLen;
  let i = tcp.optionsOffset;
  while (i < end) {
    const kind = out[i]!;
    if (kind === TCPOPT_EOL) break;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return { kind: 'malformed', reason: 'bad-option-length' };
    const olen = out[i + 1]!;
    if (olen < 2 || i + olen > end) return { kind: 'malformed', reason: 'bad-option-length' };
    if (kind === TCPOPT_MSS && olen === 4) {
      mssBefore = (out[i + 2]! << 8) | out[i + 3]!;
      mssAfter = clampMss(mssBefore, mtu, p.l4Offset, mssClamp);
      writeU16(out, i + 2, mssAfter);
    } else if (!eraseInbound || profile.isOwnOption(out, i, olen)) {
      // Our label stays: a verifier later on this host checks it (compat's covers seq and payload only).
    } else {
      out.fill(TCPOPT_NOP, i, i + olen);
      erased++;
    }
    i += olen;
  }
  if (erased === 0 && mssBefore === mssAfter) return { kind: 'unchanged', reason: 'nothing-to-do' };

  const l4Len = len - p.l4Offset;
  if (!csumNotReady) {
    const pseudo = p.family === 4 ? pseudoHeaderSumV4(pkt, 12, 16, 6, l4Len) : pseudoHeaderSumV6(pkt, 8, p.pseudoDstOffset, 6, l4Len);
    if (!l4ChecksumOk(pkt, p.l4Offset, l4Len, pseudo)) return { kind: 'unchanged', reason: 'bad-checksum' };
  }
  out[tcp.offset + 16] = 0;
  out[tcp.offset + 17] = 0;
  // IPv6: the pseudo-header's destination is the final one when there is a routing header.
  const sum = p.family === 4 ? tcpChecksumV4(out, 0, p.l4Offset, l4Len) : tcpChecksumV6(out, 0, p.l4Offset, l4Len, p.pseudoDstOffset);
  writeU16(out, tcp.offset + 16, sum);
  return { kind: 'rewritten', packet: out.subarray(0, len), mssBefore, mssAfter, erased };
}
