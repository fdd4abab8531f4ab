// What the daemons need from the host, checked at start so that a missing piece is one clear
// line instead of a failure half-way through: the iptables tools of the families in use
// (Debian package iptables), libcrypto (libssl3: the fast HMAC; node:crypto is the fallback)
// and the kernel's nfnetlink_queue (checked when binding a queue fails: the kernel loads the
// module on the first bind, so its absence before that proves nothing).
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Family } from '../wire/packet.js';

/** The programs each family's rules are installed and read with. */
export function requiredTools(families: readonly Family[]): string[] {
  return families.flatMap((f) => (f === 4 ? ['iptables', 'iptables-restore'] : ['ip6tables', 'ip6tables-restore']));
}

/** Whether an executable file `name` is in one of the PATH directories. */
export function onPath(name: string, path: string | undefined, canExec: (file: string) => boolean = isExecutable): boolean {
  return (path ?? '')
    .split(delimiter)
    .filter((d) => d.startsWith('/'))
    .some((d) => canExec(join(d, name)));
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The problem with the host, or undefined when every tool is found (pure given canExec). */
export function missingToolsProblem(
  families: readonly Family[],
  path: string | undefined,
  canExec: (file: string) => boolean = isExecutable,
): string | undefined {
  const missing = requiredTools(families).filter((t) => !onPath(t, path, canExec));
  if (missing.length === 0) return undefined;
  return `${missing.join(', ')} not found on PATH (${path || 'empty'}): install the Debian package iptables (apt-get install iptables)`;
}

/** A warning when libcrypto.so.3 cannot be loaded (labelling then uses node:crypto, 2.7-5x slower per segment). */
export function libcryptoWarning(loaded: boolean, forcedNode: boolean): string | undefined {
  if (loaded || forcedNode) return undefined;
  return 'libcrypto.so.3 cannot be loaded (Debian package libssl3): HMACs fall back to node:crypto, 2.7-5x slower per segment';
}

/** A hint for a failure to bind an NFQUEUE queue: what the host lacks, when that can be seen. */
export function queueBindHint(message: string, procFile = '/proc/net/netfilter/nfnetlink_queue'): string | undefined {
  if (/EPERM|EACCES/.test(message)) return 'binding a queue needs CAP_NET_ADMIN (run as root, or grant the capability)';
  if (!existsSync(procFile))
    return 'the kernel has no nfnetlink_queue (modprobe nfnetlink_queue; kernel option CONFIG_NETFILTER_NETLINK_QUEUE)';
  return undefined;
}
