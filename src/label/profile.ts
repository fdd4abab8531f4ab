// The label-profile interface: everything the rest of labelwall knows about a label's wire
// format. A profile is one object (one file: compat.ts, ...), picked by name from the registry
// (registry.ts) once, when a daemon, a worker or a pcap command starts, as the kernel picks an
// xt_target or dns-packet a codec; the per-packet path then calls its methods directly.
import { parseIpPacket, type ParsedPacket } from '../wire/packet.js';
import type { TcpView } from '../wire/tcp.js';
import type { LabelKey } from './keys.js';

export type Verdict = 'valid' | 'invalid' | 'unlabelled' | 'malformed' | 'skipped';
export const VERDICTS: readonly Verdict[] = ['valid', 'invalid', 'unlabelled', 'malformed', 'skipped'];

/** Why a label is malformed, beyond the parsers' own reasons (wire/malformed.ts). */
export type LabelMalformedReason =
  | 'bad-label-length' // our ExID with a length the profile does not define
  | 'duplicate-label' // two of our options in one segment
  | 'bad-label-version' // v1: a 16/20-byte label whose version bits are not 01
  | 'compact-on-syn'; // v1: the 16-byte form on a SYN

/** Why a label is invalid: our option, well formed, but not proof of origin. */
export type LabelInvalidReason =
  | 'mac-mismatch' // no key gives this MAC
  | 'no-keys' // the verifier has no key for this rule
  | 'unknown-key' // v1: no key with the label's key id
  | 'stale-epoch' // v1: the epoch is outside the verifier's window
  | 'nat-mode-denied' // v1: S/D/P set where the verifier does not allow it
  | 'other-profile'; // v1: a compat (40-byte) label, ours but not this profile's (the 'any' profile judges both)

/** v1 NAT tolerance flags (S, D, P) as bits: which of the flow's fields the MAC leaves out. */
export const NAT_SRC = 1;
export const NAT_DST = 2;
export const NAT_PORTS = 4;

export interface VerifyResult {
  verdict: Verdict;
  /** Why, for every verdict except 'valid' (e.g. 'bad-data-offset', 'mac-mismatch', 'no-label', 'not-tcp'). */
  reason?: string;
  /** For 'valid': index into the keys array of the key that matched. */
  keyIndex?: number;
  /** The profile whose label this is (set by a profile that may judge several, e.g. 'any'). */
  profile?: string;
  /** v1, when the label was parsed: its key id, app tag and NAT flags (NAT_* bits). */
  keyId?: number;
  tag?: number;
  nat?: number;
  /** v1: the label was the 16-byte compact form. */
  compact?: boolean;
}

export type LabelResult =
  | {
      ok: true;
      packet: Buffer;
      /** v1: the 16-byte form was used (the full one did not fit). */
      compact?: boolean;
      /** v1: SACK blocks beyond the first had to go to make room (docs/label-v1.md, step 1). */
      sackTrimmed?: boolean;
      /** v1: whole options had to go to make room (steps 2-5); both may be set. */
      optionsRemoved?: boolean;
    }
  | { ok: false; verdict: 'skipped' | 'malformed'; reason: string };

/** What `labelSibling` made (a reused object): the segment's length, or -1, and what `label` said of the first. */
export interface SiblingResult {
  length: number;
  compact: boolean;
  sackTrimmed: boolean;
  optionsRemoved: boolean;
}

export type FindLabelResult =
  | { found: true; offset: number }
  | { found: false; reason: 'no-label' }
  | { found: false; reason: 'bad-option-length' | LabelMalformedReason; malformed: true };

/**
 * What a profile may need besides the packet and the keys. Callers that have it fill one
 * object and reuse it (no allocation per packet); a profile that needs a field the caller did
 * not give falls back as documented here.
 */
export interface PacketContext {
  /** When the packet was seen, in ms since the Unix epoch: the capture timestamp offline. Absent: the clock now. */
  timeMs?: number;
  /** The flow's application tag (0 or absent: unclassified). */
  tag?: number;
  /** Labelling: NAT flags (NAT_* bits) to set for this destination; absent: strict (0). */
  nat?: number;
  /** Verifying: NAT flags a label may carry here; a label with others is 'invalid' (nat-mode-denied). Absent: 0. */
  allowNat?: number;
  /** Verifying: the epochs accepted are [now - epochBefore, now + epochAfter] (16 s each). Absent: 2 and 1. */
  epochBefore?: number;
  epochAfter?: number;
}

/** What the agent must do to handshakes so that labelled segments stay valid TCP. */
export interface HandshakeNeeds {
  /** label() replaces the options the stack wrote, so none of them may be negotiated. */
  readonly eraseOutbound: boolean;
  /** Inbound SYN/SYN-ACK options other than MSS and the label are erased (NOP) before the stack reads them. */
  readonly eraseInbound: boolean;
  /** Bytes the peer's MSS is lowered by, so a labelled segment still fits the MTU. */
  readonly mssClamp: number;
}

export interface LabelProfile {
  /** The name it is registered and chosen by ('compat', ...). */
  readonly name: string;
  /** The wire format's version, as `labelwall version` reports it (v1: the label's version bits; compat: the paper's format). */
  readonly formatVersion: string;
  /** TCP option kind of its label (the verifier's kernel rules call a segment without it unlabelled). */
  readonly optionKind: number;
  /** Length in bytes of its TCP option (the largest form). */
  readonly optionLength: number;
  /** Most bytes a labelled packet can be longer than the packet it was made from (buffer sizing). */
  readonly overhead: number;
  readonly handshake: HandshakeNeeds;
  /**
   * Labels a parsed IP packet with `key`. Writes into `out` when it is large enough (it may be
   * the memory of `pkt`, at the same offset) and returns a view of it; otherwise allocates.
   */
  label(pkt: Uint8Array, p: ParsedPacket, key: LabelKey, out?: Buffer, ctx?: PacketContext): LabelResult;
  /**
   * Optional GSO fast path: labels segment `i` of the super-packet `pkt` (cut at `size` payload
   * bytes) into `dst`, from `first`, another of its segments that `label` was the last to label
   * (same key and context); byte for byte what cutting and `label` would make. Length -1: not
   * applicable (label it the slow way).
   */
  labelSibling?(first: Uint8Array, pkt: Uint8Array, p: ParsedPacket, size: number, i: number, dst: Buffer): SiblingResult;
  /** Verifies a parsed IP packet against any of `keys` (several during a key rollover). */
  verify(pkt: Uint8Array, p: ParsedPacket, keys: readonly LabelKey[], ctx?: PacketContext): VerifyResult;
  /** Locates this profile's option among a TCP header's options. */
  findOption(buf: Uint8Array, tcp: TcpView): FindLabelResult;
  /** Whether the option at `at` (its kind byte), `len` bytes long and inside the options area, is this profile's label. */
  isOwnOption(buf: Uint8Array, at: number, len: number): boolean;
}

/** Labels a whole IPv4/IPv6 packet with `profile` (parses it first). */
export function labelWith(profile: LabelProfile, pkt: Uint8Array, key: LabelKey, out?: Buffer, ctx?: PacketContext): LabelResult {
  const p = parseIpPacket(pkt);
  if (!p.ok) return { ok: false, verdict: 'malformed', reason: p.reason };
  return profile.label(pkt, p, key, out, ctx);
}

/** Verifies a whole IPv4/IPv6 packet with `profile` (parses it first). */
export function verifyWith(profile: LabelProfile, pkt: Uint8Array, keys: readonly LabelKey[], ctx?: PacketContext): VerifyResult {
  const p = parseIpPacket(pkt);
  if (!p.ok) return { verdict: 'malformed', reason: p.reason };
  return profile.verify(pkt, p, keys, ctx);
}
