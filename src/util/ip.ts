// IP address text <-> bytes, below every folder that needs it (identity, agent, policy).
import ipaddr from 'ipaddr.js';

/** Parses an IPv4/IPv6 address text into 4 or 16 bytes; undefined when it is not one. */
export function parseIp(text: string): Uint8Array | undefined {
  try {
    return Uint8Array.from(ipaddr.parse(text).toByteArray());
  } catch {
    return undefined;
  }
}

export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  return ipaddr.fromByteArray(Array.from(b)).toString();
}
