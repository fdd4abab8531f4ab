// The systemd notification protocol (sd_notify(3)), by hand: with Type=notify, systemd passes
// NOTIFY_SOCKET, a UNIX datagram socket (a path, or an abstract name written with a leading
// '@'), and waits for a datagram "READY=1" before it counts the unit as started. The daemons
// send READY=1 only once their rules are installed and every queue worker has answered, so the
// units ordered after labelwall start with labelling (or checking) in force; STOPPING=1 when
// they begin to stop, RELOADING=1 ... READY=1 around a SIGHUP reload.
import { sendUnixDatagram } from '../sys/libc.js';

/** sizeof(struct sockaddr_un): sa_family_t (2 bytes) and sun_path[108]. */
const SUN_PATH_MAX = 108;
const AF_UNIX = 1;

export class NotifySocketError extends Error {}

/**
 * The struct sockaddr_un for a NOTIFY_SOCKET value (pure): a path is NUL-terminated, an
 * abstract name ('@' → a leading NUL byte) is not, and its length counts exactly its bytes.
 */
export function notifySocketAddress(value: string): Buffer {
  const abstract = value.startsWith('@');
  if (!abstract && !value.startsWith('/'))
    throw new NotifySocketError(`NOTIFY_SOCKET ${JSON.stringify(value)}: neither an absolute path nor an abstract name ('@...')`);
  const name = Buffer.from(abstract ? value.slice(1) : value, 'utf8');
  const pathLen = abstract ? 1 + name.length : name.length + 1;
  if (pathLen > SUN_PATH_MAX || (abstract && name.length === 0))
    throw new NotifySocketError(`NOTIFY_SOCKET ${JSON.stringify(value)}: not a valid UNIX socket name (at most 107 bytes)`);
  const addr = Buffer.alloc(2 + pathLen);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, abstract ? 3 : 2);
  return addr;
}

/** Sends notifications to the service manager; does nothing when not started by one. */
export class ServiceNotifier {
  private readonly addr: Buffer | undefined;
  private failed = false;

  /**
   * Reads NOTIFY_SOCKET once and removes it from the environment (as sd_notify's
   * unset_environment does), so that iptables and other children do not see it.
   */
  constructor(
    env: NodeJS.ProcessEnv,
    private readonly onError: (message: string) => void,
  ) {
    const v = env.NOTIFY_SOCKET;
    delete env.NOTIFY_SOCKET;
    if (v === undefined || v === '') return;
    try {
      this.addr = notifySocketAddress(v);
    } catch (err) {
      onError((err as Error).message);
    }
  }

  /** Whether a service manager listens (NOTIFY_SOCKET was set and valid). */
  get enabled(): boolean {
    return this.addr !== undefined;
  }

  /** Sends newline-separated assignments ("READY=1\nSTATUS=..."); a failure is reported once. */
  send(...lines: string[]): void {
    if (!this.addr) return;
    try {
      sendUnixDatagram(this.addr, Buffer.from(lines.join('\n'), 'utf8'));
    } catch (err) {
      if (!this.failed) this.onError(`notifying the service manager failed: ${(err as Error).message}`);
      this.failed = true;
    }
  }
}
