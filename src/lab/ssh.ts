// OpenSSH server in a namespace with everything (host key, client key, config, pid file) in a
// private tmp dir: the host's /etc/ssh and ~/.ssh are never read or written.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { run, type NsProcess, type Topology } from './netns.js';
import { PYTHON, peer } from './paths.js';
import { blob } from './blob.js';
import { makeTempDir } from './tmp.js';

export interface SshServer {
  proc: NsProcess;
  host: string;
  port: number;
  user: string;
  dir: string;
  /** Client private key (ed25519, no passphrase) authorised for `user`. */
  clientKey: string;
  /** Server host public key (OpenSSH .pub format). */
  hostPublicKey: string;
  stop(): Promise<void>;
}

export interface SshEchoResult {
  ok: boolean;
  sent: number;
  received: number;
  sha256_sent: string;
  sha256_received: string | null;
  seconds: number;
  error?: string;
}

/**
 * Start `/usr/sbin/sshd -D -e` in `host`, listening on all its addresses (IPv4 and IPv6) at
 * `port`. Root may log in with the generated key only (no PAM, no passwords).
 */
export async function startSshServer(topo: Topology, host: string, opts: { port?: number; timeoutMs?: number } = {}): Promise<SshServer> {
  const port = opts.port ?? 2222;
  const dir = makeTempDir('lw-ssh-');
  const hostKey = join(dir, 'host_ed25519');
  const clientKey = join(dir, 'client_ed25519');
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'labelwall-e2e-host', '-f', hostKey], { check: true });
  await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'labelwall-e2e-client', '-f', clientKey], { check: true });
  const authorized = join(dir, 'authorized_keys');
  writeFileSync(authorized, readFileSync(`${clientKey}.pub`));
  chmodSync(authorized, 0o600);
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'AddressFamily any',
      'ListenAddress 0.0.0.0',
      'ListenAddress ::',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorized}`,
      'PermitRootLogin yes',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no', // tmp dir ownership/permissions are not the point here
      'UseDNS no',
      'MaxStartups 100',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  // sshd's compiled-in privilege-separation directory; Debian's service creates it at boot,
  // which has not happened in a container. Creating an empty root-owned dir is harmless.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  await run(['/usr/sbin/sshd', '-t', '-f', config], { check: true });
  const proc = topo.spawn(host, ['/usr/sbin/sshd', '-D', '-e', '-f', config], { stdin: false });
  await proc.waitForOutput(/Server listening on \S+ port/, opts.timeoutMs ?? 10_000, 'stderr');
  await topo.waitForPort(host, port, 5000);
  return {
    proc,
    host,
    port,
    user: 'root',
    dir,
    clientKey,
    hostPublicKey: `${hostKey}.pub`,
    stop: () => proc.stop(),
  };
}

/** paramiko client in `host`: `cat` over an exec channel, `kb` KiB through it, compared byte for byte. */
export async function sshEchoParamiko(
  topo: Topology,
  host: string,
  server: SshServer,
  address: string,
  opts: { kb?: number; timeoutSec?: number } = {},
): Promise<SshEchoResult> {
  const t = opts.timeoutSec ?? 20;
  const r = await topo.exec(
    host,
    [
      PYTHON,
      peer('ssh_echo.py'),
      address,
      String(server.port),
      server.user,
      server.clientKey,
      '--kb',
      String(opts.kb ?? 64),
      '--host-key-file',
      server.hostPublicKey,
      '--timeout',
      String(t),
    ],
    { timeoutMs: t * 5 * 1000 },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as SshEchoResult;
  } catch {
    throw new Error(`ssh_echo.py gave no result (exit ${r.code}): ${r.stderr.trim()}`);
  }
}

/** OpenSSH client in `host`: `ssh ... cat` with `kb` KiB on stdin, compared byte for byte. */
export async function sshEchoOpenssh(
  topo: Topology,
  host: string,
  server: SshServer,
  address: string,
  opts: { kb?: number; timeoutSec?: number } = {},
): Promise<SshEchoResult> {
  const known = join(server.dir, 'known_hosts');
  const hostKeyLine = readFileSync(server.hostPublicKey, 'utf8').split(' ').slice(0, 2).join(' ');
  writeFileSync(known, `[${address}]:${server.port} ${hostKeyLine}\n`);
  const data = blob((opts.kb ?? 64) * 1024, 'ssh');
  const t = opts.timeoutSec ?? 20;
  const t0 = Date.now();
  const r = await topo.exec(
    host,
    [
      'ssh',
      '-F',
      '/dev/null', // ignore the host's client configuration
      '-i',
      server.clientKey,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${known}`,
      '-o',
      `ConnectTimeout=${t}`,
      '-p',
      String(server.port),
      `${server.user}@${address}`,
      'cat',
    ],
    { input: data, timeoutMs: t * 3 * 1000 },
  );
  const got = r.stdoutBuffer;
  return {
    ok: r.code === 0 && got.equals(data),
    sent: data.length,
    received: got.length,
    sha256_sent: createHash('sha256').update(data).digest('hex'),
    sha256_received: createHash('sha256').update(got).digest('hex'),
    seconds: (Date.now() - t0) / 1000,
    ...(r.code !== 0 ? { error: `ssh exit ${r.code}: ${r.stderr.trim()}` } : {}),
  };
}
