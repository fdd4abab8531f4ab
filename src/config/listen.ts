// `metrics.listen` / `--metrics-listen`: PORT, ADDR:PORT or [IPv6]:PORT (pure). An address is an
// IP literal, never a host name (what a name resolves to can change between starts); only a
// port means loopback, so that turning metrics on exposes nothing beyond the host by accident.
import { isIPv4, isIPv6 } from 'node:net';

export interface ListenAddress {
  host: string;
  port: number;
}

/** The address a bare port listens on. */
export const DEFAULT_METRICS_HOST = '127.0.0.1';

export type ListenResult = { ok: true; listen: ListenAddress } | { ok: false; reason: string };

const FORMS = 'PORT, ADDR:PORT or [IPv6]:PORT (e.g. 9464, 127.0.0.1:9464, [::1]:9464)';

function port(text: string): number | string {
  if (!/^[0-9]+$/.test(text)) return `the port must be decimal digits, got ${JSON.stringify(text)}`;
  const n = Number(text);
  if (n < 1 || n > 65535) return `the port must be 1-65535, got ${text}`;
  return n;
}

export function parseListen(v: string | number): ListenResult {
  const text = String(v).trim();
  if (text === '') return { ok: false, reason: `must be ${FORMS}, got ""` };
  let host = DEFAULT_METRICS_HOST;
  let portText = text;
  const v6 = /^\[([^\]]*)\]:(.*)$/.exec(text);
  if (v6) {
    if (!isIPv6(v6[1]!)) return { ok: false, reason: `"${v6[1]}" is not an IPv6 address` };
    host = v6[1]!;
    portText = v6[2]!;
  } else if (text.includes(':')) {
    const i = text.lastIndexOf(':');
    const addr = text.slice(0, i);
    portText = text.slice(i + 1);
    if (addr === '')
      return {
        ok: false,
        reason: `no address before ":" (give 127.0.0.1:${portText} for loopback, 0.0.0.0:${portText} for every IPv4 address)`,
      };
    if (isIPv6(text)) return { ok: false, reason: `an IPv6 address with a port is written [ADDR]:PORT, got ${JSON.stringify(text)}` };
    if (addr.includes(':')) return { ok: false, reason: `an IPv6 address is written in brackets, [${addr}]:${portText}` };
    if (!isIPv4(addr)) return { ok: false, reason: `"${addr}" is not an IP address (host names are not resolved: give the address)` };
    host = addr;
  } else if (!/^[0-9]+$/.test(text)) {
    return { ok: false, reason: `must be ${FORMS}, got ${JSON.stringify(text)}` };
  }
  const p = port(portText);
  if (typeof p === 'string') return { ok: false, reason: p };
  return { ok: true, listen: { host, port: p } };
}

/** 127.0.0.1:9464, [::1]:9464. */
export function formatListen(l: ListenAddress): string {
  return l.host.includes(':') ? `[${l.host}]:${l.port}` : `${l.host}:${l.port}`;
}
