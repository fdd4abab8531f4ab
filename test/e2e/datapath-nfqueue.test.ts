// End-to-end: the NFQUEUE datapath on real traffic between two network namespaces joined by
// a veth pair. Needs root. Every namespace is created here with a random name and deleted in
// `after`, also when a test fails; iptables rules live inside those namespaces only.
import type { WorkerStats } from '../../src/datapath/types.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const RUNNER = fileURLToPath(new URL('../helpers/queue-runner.js', import.meta.url));
const ACCEPT_ALL = new URL('../helpers/queue-handlers/accept-all.js', import.meta.url).href;
const TEST_RULES = new URL('../helpers/queue-handlers/test-rules.js', import.meta.url).href;

const tag = `lw${randomBytes(3).toString('hex')}`;
const A = `${tag}a`; // sender, where the queue and rules are
const B = `${tag}b`; // receiver
const net = 10 + (randomBytes(1)[0]! % 200);
const IP_A = `10.${net}.77.1`;
const IP_B = `10.${net}.77.2`;
const IP6_A = `fd00:${net}:77::1`;
const IP6_B = `fd00:${net}:77::2`;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function inNs(ns: string, cmd: string, args: string[]): string {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
}
function ipt(args: string[]): void {
  inNs(A, 'iptables', args);
}

/** Counter of packets of the first rule of `chain` matching `needle` in `iptables -L -v -x`. */
function ruleCount(chain: string, needle: string): number {
  const text = inNs(A, 'iptables', ['-L', chain, '-v', '-x', '-n']);
  for (const line of text.split('\n')) if (line.includes(needle)) return Number(line.trim().split(/\s+/)[0]);
  throw new Error(`no rule with ${needle} in ${chain}:\n${text}`);
}

interface Runner {
  proc: ChildProcessWithoutNullStreams;
  next(event: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  send(line: string): void;
  stats(): Promise<{ workers: WorkerStats[]; kernel: Record<string, Record<string, number>> }>;
  stop(): Promise<Record<string, unknown>>;
}

const running = new Set<ChildProcessWithoutNullStreams>();

function startRunner(opts: Record<string, unknown>): Runner {
  const proc = spawn('ip', ['netns', 'exec', A, process.execPath, RUNNER, JSON.stringify(opts)]);
  running.add(proc);
  proc.on('exit', () => running.delete(proc));
  const queue: Record<string, unknown>[] = [];
  const waiters: Array<() => void> = [];
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += String(d)));
  createInterface({ input: proc.stdout }).on('line', (l) => {
    try {
      queue.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      queue.push({ event: 'garbage', line: l });
    }
    for (const w of waiters.splice(0)) w();
  });
  const next = async (event: string, timeoutMs = 10000): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = queue.findIndex((m) => m.event === event || m.event === 'error');
      if (i >= 0) {
        const m = queue.splice(i, 1)[0]!;
        if (m.event === 'error' && event !== 'error') throw new Error(`runner error: ${String(m.message)}`);
        return m;
      }
      if (Date.now() > deadline) throw new Error(`runner: no '${event}' within ${timeoutMs} ms; stderr: ${stderr}`);
      await new Promise<void>((res) => {
        waiters.push(res);
        setTimeout(res, 100);
      });
    }
  };
  const r: Runner = {
    proc,
    next,
    send: (line) => proc.stdin.write(`${line}\n`),
    stats: async () => {
      r.send('stats');
      return (await next('stats')).stats as Awaited<ReturnType<Runner['stats']>>;
    },
    stop: async () => {
      r.send('stop');
      const m = await next('stopped');
      await new Promise<void>((res) => (proc.exitCode !== null ? res() : proc.once('exit', () => res())));
      return m;
    },
  };
  return r;
}

/** Sends `count` UDP datagrams from A to B:port, each `payload`; resolves when sent. */
function sendUdp(port: number, count: number, payload: string, dst = IP_B): void {
  const kind = dst.includes(':') ? 'udp6' : 'udp4';
  const js = `const s=require('dgram').createSocket('${kind}');let n=0;const go=()=>{if(n++>=${count}){s.close();return;}s.send(Buffer.from(${JSON.stringify(payload)}),${port},'${dst}',()=>setTimeout(go,2));};go();`;
  inNs(A, process.execPath, ['-e', js]);
}

/** Listens on B:port for `ms`, returns the datagrams received (as strings). */
function receiveUdp(port: number, ms: number, dst = IP_B): { ready: Promise<void>; done: Promise<string[]> } {
  const kind = dst.includes(':') ? 'udp6' : 'udp4';
  const js = `const s=require('dgram').createSocket('${kind}');const got=[];s.on('message',m=>got.push(m.toString('latin1')));s.bind(${port},'${dst}',()=>console.log('READY'));setTimeout(()=>{console.log(JSON.stringify(got));s.close();},${ms});`;
  const p = spawn('ip', ['netns', 'exec', B, process.execPath, '-e', js]);
  let out = '';
  let readyRes: () => void;
  const ready = new Promise<void>((res) => (readyRes = res));
  p.stdout.on('data', (d) => {
    out += String(d);
    if (out.includes('READY')) readyRes();
  });
  const done = new Promise<string[]>((res, rej) =>
    p.on('exit', () => {
      const line = out.split('\n').find((l) => l.startsWith('['));
      if (line === undefined) rej(new Error(`receiver printed no result: ${out}`));
      else res(JSON.parse(line) as string[]);
    }),
  );
  return { ready, done };
}

async function udpRoundTrip(port: number, count: number, payload: string, listenMs = 1500, dst = IP_B): Promise<string[]> {
  const rx = receiveUdp(port, listenMs, dst);
  await rx.ready;
  sendUdp(port, count, payload, dst);
  return rx.done;
}

describe('NFQUEUE datapath in network namespaces', { concurrency: false }, () => {
  before(() => {
    sh('ip', ['netns', 'add', A]);
    sh('ip', ['netns', 'add', B]);
    sh('ip', ['link', 'add', `${tag}x`, 'netns', A, 'type', 'veth', 'peer', 'name', `${tag}y`, 'netns', B]);
    inNs(A, 'ip', ['addr', 'add', `${IP_A}/24`, 'dev', `${tag}x`]);
    inNs(B, 'ip', ['addr', 'add', `${IP_B}/24`, 'dev', `${tag}y`]);
    inNs(A, 'ip', ['-6', 'addr', 'add', `${IP6_A}/64`, 'dev', `${tag}x`, 'nodad']);
    inNs(B, 'ip', ['-6', 'addr', 'add', `${IP6_B}/64`, 'dev', `${tag}y`, 'nodad']);
    for (const [ns, dev] of [
      [A, `${tag}x`],
      [B, `${tag}y`],
    ] as const) {
      inNs(ns, 'ip', ['link', 'set', dev, 'up']);
      inNs(ns, 'ip', ['link', 'set', 'lo', 'up']);
    }
  });

  after(() => {
    for (const p of running) p.kill('SIGKILL');
    for (const ns of [A, B]) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        /* already gone */
      }
    }
  });

  it('accept-only: TCP and UDP go through the worker, counted', async () => {
    ipt(['-F', 'OUTPUT']);
    ipt(['-A', 'OUTPUT', '-d', IP_B, '-j', 'NFQUEUE', '--queue-num', '3']);
    const r = startRunner({ queues: [3], handlerModule: ACCEPT_ALL, handlerData: null, failOpen: false });
    try {
      await r.next('ready');
      const server = spawn('ip', ['netns', 'exec', B, 'iperf3', '-s', '-1', '-B', IP_B]);
      running.add(server);
      await new Promise((res) => setTimeout(res, 500));
      const json = JSON.parse(inNs(A, 'iperf3', ['-c', IP_B, '-n', '20M', '-J'])) as {
        end: { sum_sent: { bytes: number }; sum_received: { bytes: number } };
      };
      // With -n the client stops at 20 MiB sent; the server's count is taken before the tail lands.
      assert.ok(json.end.sum_sent.bytes >= 20 * 1024 * 1024, `iperf3 sent ${json.end.sum_sent.bytes} bytes`);
      assert.ok(json.end.sum_received.bytes > 10 * 1024 * 1024, `iperf3 received ${json.end.sum_received.bytes} bytes`);
      const got = await udpRoundTrip(5001, 20, 'hello');
      assert.equal(got.length, 20);
      const s = await r.stats();
      const w = s.workers[0]!;
      const queued = ruleCount('OUTPUT', 'NFQUEUE');
      assert.ok(w.received > 1000, `worker received ${w.received}`);
      // The rule counts GSO super-packets; the kernel segments them before queueing.
      assert.ok(w.received >= queued, `worker received ${w.received}, rule queued ${queued}`);
      assert.equal(w.received, s.kernel['3']!.idSequence, 'every packet id the kernel issued reached the worker');
      assert.equal(w.verdicts, w.received);
      assert.equal(w.handler.packets!, w.received);
      assert.equal(w.kernelErrors, 0);
      assert.equal(w.handlerErrors, 0);
      assert.ok(w.batchVerdictMsgs > 0, 'plain accepts were coalesced into batch verdicts');
      assert.equal(s.kernel['3']!.queueDropped, 0);
    } finally {
      await r.stop();
    }
    // A clean stop unbinds: the queue is gone from the kernel's table.
    const table = inNs(A, 'cat', ['/proc/net/netfilter/nfnetlink_queue']);
    assert.ok(!table.split('\n').some((l) => l.trim().split(/\s+/)[0] === '3'), table);
  });

  it('gso: whole GSO packets reach the handler unsegmented', async () => {
    ipt(['-F', 'OUTPUT']);
    ipt(['-A', 'OUTPUT', '-d', IP_B, '-p', 'tcp', '-j', 'NFQUEUE', '--queue-num', '3']);
    const r = startRunner({ queues: [3], handlerModule: ACCEPT_ALL, handlerData: null, failOpen: false, gso: true });
    try {
      await r.next('ready');
      const server = spawn('ip', ['netns', 'exec', B, 'iperf3', '-s', '-1', '-B', IP_B]);
      running.add(server);
      await new Promise((res) => setTimeout(res, 500));
      const json = JSON.parse(inNs(A, 'iperf3', ['-c', IP_B, '-n', '20M', '-J'])) as { end: { sum_sent: { bytes: number } } };
      assert.ok(json.end.sum_sent.bytes >= 20 * 1024 * 1024);
      const w = (await r.stats()).workers[0]!;
      assert.ok(w.handler.gso! > 0, `handler saw ${w.handler.gso!} GSO packets`);
      assert.ok(w.handler.bytes! / w.handler.packets! > 1500, `mean packet ${w.handler.bytes! / w.handler.packets!} bytes > MTU`);
      assert.equal(w.truncated, 0);
    } finally {
      await r.stop();
    }
  });

  it('IPv6: packets go through the worker', async () => {
    inNs(A, 'ip6tables', ['-F', 'OUTPUT']);
    inNs(A, 'ip6tables', ['-A', 'OUTPUT', '-d', IP6_B, '-p', 'udp', '-j', 'NFQUEUE', '--queue-num', '8']);
    const r = startRunner({ queues: [8], handlerModule: ACCEPT_ALL, handlerData: null, failOpen: false });
    try {
      await r.next('ready');
      const got = await udpRoundTrip(5010, 20, 'six', 1500, IP6_B);
      assert.equal(got.length, 20);
      const w = (await r.stats()).workers[0]!;
      assert.equal(w.received, 20);
      assert.equal(w.handler.bytes, 20 * (40 + 8 + 3), 'IPv6 header + UDP header + 3 bytes each');
    } finally {
      await r.stop();
      inNs(A, 'ip6tables', ['-F', 'OUTPUT']);
    }
  });

  it('accept-only without batch verdicts', async () => {
    ipt(['-F', 'OUTPUT']);
    ipt(['-A', 'OUTPUT', '-d', IP_B, '-p', 'udp', '-j', 'NFQUEUE', '--queue-num', '3']);
    const r = startRunner({ queues: [3], handlerModule: ACCEPT_ALL, handlerData: null, failOpen: false, batchVerdicts: false });
    try {
      await r.next('ready');
      const got = await udpRoundTrip(5001, 30, 'x');
      assert.equal(got.length, 30);
      const w = (await r.stats()).workers[0]!;
      assert.equal(w.received, 30);
      assert.equal(w.batchVerdictMsgs, 0);
    } finally {
      await r.stop();
    }
  });

  it('a payload-rewriting verdict reaches the receiver; mark+repeat is seen by a later rule; handler errors fail closed', async () => {
    ipt(['-F', 'OUTPUT']);
    ipt(['-A', 'OUTPUT', '-p', 'udp', '--dport', '5003', '-m', 'mark', '--mark', '0x77', '-j', 'DROP']);
    ipt(['-A', 'OUTPUT', '-d', IP_B, '-p', 'udp', '-j', 'NFQUEUE', '--queue-num', '4']);
    const r = startRunner({
      queues: [4],
      handlerModule: TEST_RULES,
      handlerData: {
        rules: [
          { dport: 5002, action: 'rewrite-first-byte', byte: 'Z'.charCodeAt(0) },
          { dport: 5003, action: 'mark-repeat', mark: 0x77 },
          { dport: 5004, action: 'throw' },
        ],
      },
      failOpen: false,
    });
    try {
      await r.next('ready');
      const rewritten = await udpRoundTrip(5002, 10, 'abcdef');
      assert.deepEqual(rewritten, Array(10).fill('Zbcdef'), 'receiver got the rewritten byte (checksum valid)');
      const before = ruleCount('OUTPUT', 'mark match 0x77');
      const marked = await udpRoundTrip(5003, 10, 'm');
      assert.equal(marked.length, 0, 'marked packets were dropped by the mark rule');
      assert.equal(ruleCount('OUTPUT', 'mark match 0x77') - before, 10, 'the mark rule matched the 10 re-injected packets');
      const thrown = await udpRoundTrip(5004, 5, 't', 800);
      assert.equal(thrown.length, 0, 'handler exceptions give the fail-closed verdict');
      const plain = await udpRoundTrip(5005, 5, 'p', 800);
      assert.equal(plain.length, 5);
      const w = (await r.stats()).workers[0]!;
      assert.equal(w.handler.rewritten, 10);
      assert.equal(w.payloadVerdicts, 10);
      assert.equal(w.handler.marked, 10);
      assert.equal(w.handlerErrors, 5);
      // Config reload through onMessage.
      r.send(`post ${JSON.stringify({ dropPorts: [5005] })}`);
      await new Promise((res) => setTimeout(res, 300));
      const reloaded = await udpRoundTrip(5005, 5, 'p', 800);
      assert.equal(reloaded.length, 0, 'the handler applied the message from the main thread');
      assert.equal(w.kernelErrors, 0);
    } finally {
      await r.stop();
    }
  });

  it('fail-closed: a stalled or dead listener lets nothing through', async () => {
    ipt(['-F', 'OUTPUT']);
    ipt(['-A', 'OUTPUT', '-d', IP_B, '-p', 'udp', '-j', 'NFQUEUE', '--queue-num', '5']);
    const r = startRunner({ queues: [5], handlerModule: ACCEPT_ALL, handlerData: null, failOpen: false, maxLen: 8 });
    await r.next('ready');
    assert.equal((await udpRoundTrip(5006, 5, 'ok', 800)).length, 5, 'passes while answered');
    r.proc.kill('SIGSTOP'); // bound, not answering
    try {
      const got = await udpRoundTrip(5006, 30, 'stalled', 1000);
      assert.equal(got.length, 0, 'nothing passes while the listener is stalled');
    } finally {
      r.proc.kill('SIGKILL');
      r.proc.kill('SIGCONT');
    }
    await new Promise<void>((res) => (r.proc.exitCode !== null || r.proc.signalCode !== null ? res() : r.proc.once('exit', () => res())));
    const rows = inNs(A, 'cat', ['/proc/net/netfilter/nfnetlink_queue']);
    assert.ok(!rows.split('\n').some((l) => l.trim().split(/\s+/)[0] === '5'), 'the dead socket released the queue');
    const got = await udpRoundTrip(5006, 10, 'dead', 800);
    assert.equal(got.length, 0, 'nothing passes with nobody bound (NFQUEUE without --queue-bypass)');
  });

  it('fail-open: a full queue lets packets through; no listener still drops without --queue-bypass', async () => {
    ipt(['-F', 'OUTPUT']);
    ipt(['-A', 'OUTPUT', '-d', IP_B, '-p', 'udp', '-j', 'NFQUEUE', '--queue-num', '6']);
    const r = startRunner({ queues: [6], handlerModule: ACCEPT_ALL, handlerData: null, failOpen: true, maxLen: 4 });
    await r.next('ready');
    r.proc.kill('SIGSTOP');
    let got: string[];
    try {
      got = await udpRoundTrip(5007, 30, 'open', 1000);
    } finally {
      r.proc.kill('SIGKILL');
      r.proc.kill('SIGCONT');
    }
    // The first 4 wait in the full queue (and die with the process); the rest bypass it.
    assert.equal(got.length, 26, `fail-open passed ${got.length} of 30 with queue length 4`);
    await new Promise<void>((res) => (r.proc.exitCode !== null || r.proc.signalCode !== null ? res() : r.proc.once('exit', () => res())));
    assert.equal((await udpRoundTrip(5007, 10, 'none', 800)).length, 0, 'no listener: dropped');
    ipt(['-R', 'OUTPUT', '1', '-d', IP_B, '-p', 'udp', '-j', 'NFQUEUE', '--queue-num', '6', '--queue-bypass']);
    assert.equal((await udpRoundTrip(5007, 10, 'bypass', 800)).length, 10, '--queue-bypass passes with no listener');
  });

  it('start fails clearly without CAP_NET_ADMIN', async () => {
    const out = (() => {
      try {
        return inNs(A, 'setpriv', [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          '--inh-caps=-all',
          process.execPath,
          RUNNER,
          JSON.stringify({ queues: [9], handlerModule: ACCEPT_ALL, handlerData: null, failOpen: false }),
        ]);
      } catch (e) {
        return String((e as { stdout?: string }).stdout ?? '');
      }
    })();
    const m = JSON.parse(out.trim().split('\n')[0]!) as { event: string; message: string; errno: number };
    assert.equal(m.event, 'error');
    assert.equal(m.errno, 1);
    assert.match(m.message, /^queue 9: .*EPERM.*needs CAP_NET_ADMIN/);
  });

  it('start fails clearly when the queue is held by another socket', async () => {
    const r1 = startRunner({ queues: [7], handlerModule: ACCEPT_ALL, handlerData: null, failOpen: false });
    try {
      await r1.next('ready');
      const r2 = startRunner({ queues: [7], handlerModule: ACCEPT_ALL, handlerData: null, failOpen: false });
      const e = await r2.next('error');
      assert.match(String(e.message), /EPERM.*already bound by another netlink socket/);
      assert.equal(e.errno, 1);
    } finally {
      await r1.stop();
    }
  });
});
