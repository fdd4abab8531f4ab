// /proc/net/{tcp,udp,icmp,raw}{,6} tables: the fallback where sock_diag cannot answer
// (ping sockets and raw sockets on kernels without raw_diag, such as this project's 6.18).
// Parsing is pure; reading is one readFileSync of the caller's network namespace view.
import { readFileSync } from 'node:fs';

export interface ProcNetEntry {
  family: 4 | 6;
  src: Uint8Array;
  /** Local port; for ping sockets the ICMP echo identifier; for raw sockets the protocol. */
  sport: number;
  dst: Uint8Array;
  dport: number;
  state: number;
  uid: number;
  inode: number;
}

/** Parses one table. Lines that do not parse are skipped (the header, truncated lines). */
export function parseProcNet(text: string, family: 4 | 6): ProcNetEntry[] {
  const out: ProcNetEntry[] = [];
  const hexLen = family === 4 ? 8 : 32;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !f[0]!.endsWith(':')) continue;
    const local = parseEndpoint(f[1]!, hexLen);
    const remote = parseEndpoint(f[2]!, hexLen);
    const state = parseInt(f[3]!, 16);
    const uid = Number(f[7]);
    const inode = Number(f[9]);
    if (!local || !remote || !Number.isFinite(state) || !Number.isInteger(uid) || !Number.isInteger(inode)) continue;
    out.push({ family, src: local.addr, sport: local.port, dst: remote.addr, dport: remote.port, state, uid, inode });
  }
  return out;
}

/**
 * "0100007F:1F90": the address is the kernel's __be32 words printed as host-order (little-endian)
 * hex, so each 4-byte group is byte-reversed; the port is plain host-order hex.
 */
function parseEndpoint(s: string, hexLen: number): { addr: Uint8Array; port: number } | undefined {
  const colon = s.indexOf(':');
  if (colon !== hexLen || !/^[0-9A-Fa-f]+:[0-9A-Fa-f]{4}$/.test(s)) return undefined;
  const addr = new Uint8Array(hexLen / 2);
  for (let w = 0; w < hexLen / 8; w++) {
    for (let i = 0; i < 4; i++) {
      addr[w * 4 + i] = parseInt(s.slice(w * 8 + (3 - i) * 2, w * 8 + (3 - i) * 2 + 2), 16);
    }
  }
  return { addr, port: parseInt(s.slice(colon + 1), 16) };
}

export type ProcNetTable = 'tcp' | 'udp' | 'icmp' | 'raw';

export function readProcNet(table: ProcNetTable, family: 4 | 6): ProcNetEntry[] {
  const name = family === 4 ? table : `${table}6`;
  try {
    return parseProcNet(readFileSync(`/proc/self/net/${name}`, 'utf8'), family);
  } catch {
    return [];
  }
}
