// Pure CIDR and port matchers shared by the verifier (per packet) and the egress policy.
// Parsed forms are plain data (structured-clone safe) so they can cross into worker threads.
import { createRequire } from 'node:module';
import ipaddr from 'ipaddr.js';
import type { RE2JS as RE2JSClass } from 're2js';
import type { Family } from '../wire/packet.js';
import { bytesToIp } from './ip.js';

export interface Cidr {
  family: Family;
  /** Network address, 4 or 16 bytes, host bits cleared. */
  network: Uint8Array;
  prefix: number;
  /** Canonical text, e.g. "10.0.0.0/8". */
  text: string;
}

export interface PortRange {
  lo: number;
  hi: number;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Parses "a.b.c.d/n", "x::/n" or a bare address (a host route). Host bits must be zero. */
export function parseCidr(text: string): ParseResult<Cidr> {
  const s = text.trim();
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(addrText);
  } catch {
    return { ok: false, reason: `"${text}" is not an IPv4 or IPv6 address/prefix` };
  }
  // ipaddr.parse accepts shorthand IPv4 like "10.1" and octal/hex parts; insist on the 4-part decimal form.
  if (addr.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(addrText)) {
    return { ok: false, reason: `"${text}" is not an IPv4 or IPv6 address/prefix` };
  }
  const family: Family = addr.kind() === 'ipv4' ? 4 : 6;
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) {
      return { ok: false, reason: `"${text}": prefix length must be 0-${bits}` };
    }
    prefix = Number(p);
  }
  const network = Uint8Array.from(addr.toByteArray());
  const masked = maskBytes(network, prefix);
  if (!bytesEqual(masked, network)) {
    const fixed = `${bytesToIp(masked)}/${prefix}`;
    return { ok: false, reason: `"${text}" has host bits set (did you mean "${fixed}"?)` };
  }
  return { ok: true, value: { family, network, prefix, text: `${bytesToIp(network)}/${prefix}` } };
}

/** Parses a port "443" / 443 or an inclusive range "8000-9000". */
export function parsePortRange(spec: string | number): ParseResult<PortRange> {
  const s = String(spec).trim();
  const m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(s);
  if (!m) return { ok: false, reason: `"${s}" is not a port or a range "LOW-HIGH"` };
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  for (const p of [lo, hi]) {
    if (p < 1 || p > 65535) return { ok: false, reason: `"${s}": port ${p} is outside 1-65535` };
  }
  if (lo > hi) return { ok: false, reason: `"${s}": range start ${lo} is greater than its end ${hi}` };
  return { ok: true, value: { lo, hi } };
}

/**
 * True when `addr` (4 or 16 bytes) lies in `cidr`. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) matches IPv4 prefixes, since that is the IPv4 peer a dual-stack socket talks to.
 */
export function cidrContains(cidr: Cidr, addr: Uint8Array): boolean {
  let a = addr;
  if (cidr.family === 4 && addr.length === 16 && isV4Mapped(addr)) a = addr.subarray(12);
  if (a.length !== cidr.network.length) return false;
  const full = cidr.prefix >>> 3;
  const net = cidr.network;
  for (let i = 0; i < full; i++) if (a[i] !== net[i]) return false;
  const rem = cidr.prefix & 7;
  if (rem === 0) return true;
  const mask = (0xff << (8 - rem)) & 0xff;
  return (a[full]! & mask) === net[full];
}

/** Empty list means "any address". */
export function matchCidrs(list: readonly Cidr[], addr: Uint8Array): boolean {
  if (list.length === 0) return true;
  for (const c of list) if (cidrContains(c, addr)) return true;
  return false;
}

/** Empty list means "any port". */
export function matchPorts(list: readonly PortRange[], port: number): boolean {
  if (list.length === 0) return true;
  for (const r of list) if (port >= r.lo && port <= r.hi) return true;
  return false;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

function maskBytes(b: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) {
    const bitsHere = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = b[i]! & ((0xff << (8 - bitsHere)) & 0xff);
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// cmdline patterns: RE2 (re2js), whose matching time is linear in the input, so no pattern and
// no argv can stall the egress worker (a backtracking engine took 39 s for (a+)+$ on 32 "a"s and
// a "!"). The argv is matched on its first MAX_CMDLINE_MATCH characters: that bounds the cost of
// one rule on one process.

/** Characters of the joined argv a cmdline pattern sees (a longer argv is cut). */
export const MAX_CMDLINE_MATCH = 4096;

// Loaded on first use (synchronously, its CommonJS build): most commands never need it.
let re2: typeof RE2JSClass | undefined;
const RE2 = (): typeof RE2JSClass => (re2 ??= (createRequire(import.meta.url)('re2js') as { RE2JS: typeof RE2JSClass }).RE2JS);

/** Why `pattern` cannot be compiled, or undefined when it can. */
export function cmdlinePatternError(pattern: string): string | undefined {
  try {
    RE2().compile(pattern);
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(/^error parsing regexp: /, '');
  }
}

/** A compiled cmdline pattern: searches (not anchored) the argv joined by single spaces. */
export function compileCmdline(pattern: string): (argv: readonly string[]) => boolean {
  const re = RE2().compile(pattern);
  return (argv) => {
    let s = '';
    for (let i = 0; i < argv.length && s.length < MAX_CMDLINE_MATCH; i++) s = i === 0 ? argv[0]! : `${s} ${argv[i]}`;
    return re.test(s.length > MAX_CMDLINE_MATCH ? s.slice(0, MAX_CMDLINE_MATCH) : s);
  };
}
