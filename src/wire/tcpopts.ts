// TCP options: every kind is walked by its length byte; EOL ends the list, NOP is one byte.
// Two interfaces: a zero-allocation walker for the per-packet path (`checkTcpOptions`,
// `findExperimentalOption`) and a typed list for tools and tests (`parseTcpOptions`).
import type { MalformedReason } from './malformed.js';

export const TCPOPT_EOL = 0;
export const TCPOPT_NOP = 1;
export const TCPOPT_MSS = 2;
export const TCPOPT_WSCALE = 3;
export const TCPOPT_SACK_PERMITTED = 4;
export const TCPOPT_SACK = 5;
export const TCPOPT_TIMESTAMP = 8;
export const TCPOPT_MD5 = 19;
export const TCPOPT_AO = 29;
export const TCPOPT_EXP1 = 253;
export const TCPOPT_EXP2 = 254;

/** The length a known option kind must have, or 0 when the kind is variable/unknown. */
function fixedLength(kind: number): number {
  switch (kind) {
    case TCPOPT_MSS:
      return 4;
    case TCPOPT_WSCALE:
      return 3;
    case TCPOPT_SACK_PERMITTED:
      return 2;
    case TCPOPT_TIMESTAMP:
      return 10;
    case TCPOPT_MD5:
      return 18;
    default:
      return 0;
  }
}

/** Checks one option's length for its kind. SACK must be 2 + 8n (n = 1..4). */
export function tcpOptionLengthOk(kind: number, len: number): boolean {
  if (len < 2) return false;
  const fixed = fixedLength(kind);
  if (fixed !== 0) return len === fixed;
  if (kind === TCPOPT_SACK) return len >= 10 && (len - 2) % 8 === 0;
  return true;
}

/**
 * Walks the options in buf[off, off+len) and calls nothing: returns null when well-formed, or
 * a reason. Use when only validity matters.
 */
export function checkTcpOptions(buf: Uint8Array, off: number, len: number): MalformedReason | null {
  const end = off + len;
  let i = off;
  while (i < end) {
    const kind = buf[i]!;
    if (kind === TCPOPT_EOL) return null;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return 'bad-option-length';
    const olen = buf[i + 1]!;
    if (!tcpOptionLengthOk(kind, olen) || i + olen > end) return 'bad-option-length';
    i += olen;
  }
  return null;
}

/** Result codes of `findExperimentalOption` below zero. */
export const OPT_NOT_FOUND = -1;
export const OPT_MALFORMED = -2;
export const OPT_DUPLICATE = -3;

/**
 * Zero-allocation search for an RFC 6994 experimental option (kind 253/254, ExID in bytes
 * 2..3) with the given kind and ExID. Validates the whole option list on the way. Returns the
 * absolute offset of the option, OPT_NOT_FOUND, OPT_MALFORMED (bad lengths) or OPT_DUPLICATE
 * (the option appears twice). The option's own length is NOT checked here: callers decide.
 */
export function findExperimentalOption(buf: Uint8Array, off: number, len: number, kind: number, exid: number): number {
  const end = off + len;
  let i = off;
  let found = OPT_NOT_FOUND;
  while (i < end) {
    const k = buf[i]!;
    if (k === TCPOPT_EOL) break;
    if (k === TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return OPT_MALFORMED;
    const olen = buf[i + 1]!;
    if (!tcpOptionLengthOk(k, olen) || i + olen > end) return OPT_MALFORMED;
    if (k === kind && olen >= 4 && ((buf[i + 2]! << 8) | buf[i + 3]!) === exid) {
      if (found !== OPT_NOT_FOUND) return OPT_DUPLICATE;
      found = i;
    }
    i += olen;
  }
  return found;
}

export type TcpOption =
  | { kind: 0; name: 'eol'; offset: number; length: 1 }
  | { kind: 1; name: 'nop'; offset: number; length: 1 }
  | { kind: 2; name: 'mss'; offset: number; length: 4; mss: number }
  | { kind: 3; name: 'wscale'; offset: number; length: 3; shift: number }
  | { kind: 4; name: 'sack-permitted'; offset: number; length: 2 }
  | { kind: 5; name: 'sack'; offset: number; length: number; blocks: Array<[number, number]> }
  | { kind: 8; name: 'timestamp'; offset: number; length: 10; tsval: number; tsecr: number }
  | { kind: 253 | 254; name: 'experimental'; offset: number; length: number; exid: number | null }
  | { kind: number; name: 'other'; offset: number; length: number };

export type TcpOptionsResult = { ok: true; options: TcpOption[] } | { ok: false; reason: MalformedReason; detail: string };

function u32(buf: Uint8Array, o: number): number {
  return ((buf[o]! << 24) >>> 0) + ((buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!);
}

/**
 * Parses the options in buf[off, off+len) into a typed list (offsets absolute, `length` is the
 * whole option). EOL is listed and ends the list (the rest is padding).
 */
export function parseTcpOptions(buf: Uint8Array, off: number, len: number): TcpOptionsResult {
  const options: TcpOption[] = [];
  const end = Math.min(off + len, buf.length);
  let i = off;
  while (i < end) {
    const kind = buf[i]!;
    if (kind === TCPOPT_EOL) {
      options.push({ kind: 0, name: 'eol', offset: i, length: 1 });
      break;
    }
    if (kind === TCPOPT_NOP) {
      options.push({ kind: 1, name: 'nop', offset: i, length: 1 });
      i++;
      continue;
    }
    if (i + 1 >= end) return { ok: false, reason: 'bad-option-length', detail: `option ${kind} at ${i - off}: no length byte` };
    const olen = buf[i + 1]!;
    if (i + olen > end)
      return { ok: false, reason: 'bad-option-length', detail: `option ${kind} at ${i - off}: length ${olen} runs past the header` };
    if (!tcpOptionLengthOk(kind, olen))
      return { ok: false, reason: 'bad-option-length', detail: `option ${kind} at ${i - off}: length ${olen}` };
    switch (kind) {
      case TCPOPT_MSS:
        options.push({ kind, name: 'mss', offset: i, length: 4, mss: (buf[i + 2]! << 8) | buf[i + 3]! });
        break;
      case TCPOPT_WSCALE:
        options.push({ kind, name: 'wscale', offset: i, length: 3, shift: buf[i + 2]! });
        break;
      case TCPOPT_SACK_PERMITTED:
        options.push({ kind, name: 'sack-permitted', offset: i, length: 2 });
        break;
      case TCPOPT_SACK: {
        const blocks: Array<[number, number]> = [];
        for (let b = i + 2; b + 8 <= i + olen; b += 8) blocks.push([u32(buf, b), u32(buf, b + 4)]);
        options.push({ kind, name: 'sack', offset: i, length: olen, blocks });
        break;
      }
      case TCPOPT_TIMESTAMP:
        options.push({ kind, name: 'timestamp', offset: i, length: 10, tsval: u32(buf, i + 2), tsecr: u32(buf, i + 6) });
        break;
      case TCPOPT_EXP1:
      case TCPOPT_EXP2:
        options.push({ kind, name: 'experimental', offset: i, length: olen, exid: olen >= 4 ? (buf[i + 2]! << 8) | buf[i + 3]! : null });
        break;
      default:
        options.push({ kind, name: 'other', offset: i, length: olen });
    }
    i += olen;
  }
  return { ok: true, options };
}
