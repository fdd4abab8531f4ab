// systemd's notification protocol, for real: a NOTIFY_SOCKET listener of our own (a UNIX
// datagram socket, test/peers/notify_listener.py, in the daemon's namespace) receives what the
// real `labelwall agent` and `labelwall verifier` send. When READY=1 arrives the listener
// freezes the sender's process group and reads iptables-save there: the rules exist at that
// moment (and did not when it started listening). SIGHUP gives RELOADING=1 then READY=1, SIGTERM
// STOPPING=1 before the rules go. A path socket for the agent, an abstract one ('@') for the
// verifier. Control: a sender that says READY=1 before any rule exists is caught by the same check.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeTempDir } from '../../src/lab/tmp.js';
import { LABELWALL_BIN, labelwallRules, writeKey } from '../../src/lab/labelwall.js';
import { createTopology, waitFor, type NsProcess, type Topology } from '../../src/lab/netns.js';
import { PYTHON } from '../../src/lab/paths.js';
import { testPeer } from '../helpers/paths.js';

interface Note {
  listening?: string;
  msg?: string;
  pid?: number;
  rules?: { 'iptables-save': number; 'ip6tables-save': number };
}

/** What the listener printed so far. */
function notes(p: NsProcess): Note[] {
  return p.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Note);
}

async function listen(topo: Topology, host: string, addr: string): Promise<NsProcess> {
  const p = topo.spawn(host, [PYTHON, testPeer('notify_listener.py'), addr]);
  await p.waitForOutput(/"listening"/, 10_000);
  return p;
}

async function waitNote(p: NsProcess, pred: (n: Note) => boolean, what: string, from = 0): Promise<Note> {
  let found: Note | undefined;
  await waitFor(
    () => {
      found = notes(p)
        .slice(from)
        .find((n) => pred(n));
      if (!found && !p.running) throw new Error(`listener exited:\n${p.describe()}`);
      return found !== undefined;
    },
    20_000,
    { what, intervalMs: 50 },
  );
  return found!;
}

const lines = (n: Note): string[] => (n.msg ?? '').split('\n');

/** The check of the test: the first READY=1 found the role's rules of both families in place. */
function assertReadyAfterRules(all: Note[]): void {
  const start = all.find((n) => n.listening !== undefined);
  assert.deepEqual(start?.rules, { 'iptables-save': 0, 'ip6tables-save': 0 }, 'no labelwall rule when the listener started');
  const ready = all.find((n) => lines(n).includes('READY=1'));
  assert.ok(ready, 'READY=1 arrived');
  assert.ok(
    (ready.rules?.['iptables-save'] ?? 0) > 0 && (ready.rules?.['ip6tables-save'] ?? 0) > 0,
    `the rules of both families were in place when READY=1 arrived: ${JSON.stringify(ready.rules)}`,
  );
}

describe('Type=notify: READY=1 only once the rules are in place, STOPPING=1, RELOADING=1', { timeout: 120_000 }, () => {
  let topo: Topology;
  let dir: string;
  let key: string;

  before(async () => {
    dir = makeTempDir('lw-notify-');
    key = writeKey(dir, 'site').path;
    topo = await createTopology({ hosts: [{ name: 'pc' }, { name: 'mb', router: true }], links: [{ a: 'pc', b: 'mb' }], subnetBase: 241 });
  });
  after(async () => {
    await topo?.destroy();
  });

  async function lifecycle(host: string, role: 'agent' | 'verifier', addr: string, args: string[]): Promise<void> {
    const listener = await listen(topo, host, addr);
    const socket = join(dir, `${role}.sock`);
    const daemon = topo.spawn(host, [process.execPath, LABELWALL_BIN, role, '--control-socket', socket, '--key-file', key, ...args], {
      env: { ...process.env, NOTIFY_SOCKET: addr },
    });
    try {
      const ready = await waitNote(listener, (n) => lines(n).includes('READY=1'), `${role}: READY=1`);
      assert.equal(ready.pid, daemon.pid, 'READY=1 came from the daemon itself (NotifyAccess=main)');
      assert.match(ready.msg ?? '', /STATUS=.*rules installed/);
      assertReadyAfterRules(notes(listener));
      assert.ok((await labelwallRules(topo, host)).length > 0);

      const before = notes(listener).length;
      daemon.signal('SIGHUP');
      await waitNote(listener, (n) => lines(n).includes('RELOADING=1'), `${role}: RELOADING=1`, before);
      const reloaded = await waitNote(listener, (n) => lines(n).includes('READY=1'), `${role}: READY=1 after the reload`, before + 1);
      assert.ok(reloaded.rules && reloaded.rules['iptables-save'] > 0);

      daemon.signal('SIGTERM');
      const stopping = await waitNote(listener, (n) => lines(n).includes('STOPPING=1'), `${role}: STOPPING=1`);
      assert.match(stopping.msg ?? '', /STATUS=stopping \(SIGTERM\)/);
      const code = await daemon.exited;
      assert.equal(code.code, 0, daemon.describe());
      assert.deepEqual(await labelwallRules(topo, host), [], 'a clean stop leaves no rule');
      // The daemon removed NOTIFY_SOCKET from its environment: no iptables child wrote to it.
      assert.ok(
        notes(listener).every((n) => n.listening !== undefined || n.pid === daemon.pid),
        'every datagram came from the daemon',
      );
    } finally {
      await daemon.stop(3000);
      await listener.stop(1000);
    }
  }

  test('agent, NOTIFY_SOCKET a path', async () => {
    await lifecycle('pc', 'agent', join(dir, 'notify-agent'), []);
  });

  test('verifier, NOTIFY_SOCKET an abstract name (@...)', async () => {
    await lifecycle('mb', 'verifier', `@lw-notify-${randomBytes(4).toString('hex')}`, ['--hook', 'forward']);
  });

  test('control: a READY=1 sent before any rule exists is caught by the same check', async () => {
    const addr = join(dir, 'notify-control');
    const listener = await listen(topo, 'pc', addr);
    const early = topo.spawn('pc', [
      PYTHON,
      '-c',
      'import socket,sys,time; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b"READY=1", sys.argv[1]); time.sleep(5)',
      addr,
    ]);
    try {
      await waitNote(listener, (n) => lines(n).includes('READY=1'), 'the early READY=1');
      assert.throws(() => assertReadyAfterRules(notes(listener)), /rules of both families were in place/);
    } finally {
      await early.stop(1000);
      await listener.stop(1000);
    }
  });
});
