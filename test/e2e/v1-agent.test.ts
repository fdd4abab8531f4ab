// The agent with the v1 profile (the daemon default) in a namespace topology: real flows over
// IPv4 and IPv6 keep window scaling, SACK and timestamps (the SYN options in a capture on the
// middlebox, read by tshark, and `ss -ti` on the client), every captured segment from the client
// carries a v1 label that `labelwall pcap verify` calls valid with the tag of the egress rule
// that allowed its flow; a SIGHUP in the middle of an iperf3 upload switches the key id with no
// invalid or unlabelled segment and nothing lost; `--profile compat` still labels the old way.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../../src/lab/tmp.js';
import { LABELWALL_BIN, labelwallRules, startDaemon, writeKey, type Daemon } from '../../src/lab/labelwall.js';
import { createTopology, run, standardTopology, waitFor, type NsProcess, type Topology } from '../../src/lab/netns.js';
import { httpRequests, startHttpServer, type HttpServer } from '../../src/lab/http.js';
import { runIperf, startIperfServer, type IperfServer } from '../../src/lab/iperf.js';
import { blob, firstDifference } from '../../src/lab/blob.js';

interface Frame {
  frame: number;
  verdict: string;
  reason?: string;
  profile?: string;
  keyId?: number;
  tag?: number;
  compact?: boolean;
}

describe('v1 agent: options kept, tags from egress rules, key rollover by SIGHUP', { timeout: 240_000 }, () => {
  let topo: Topology;
  let dir: string;
  let http: HttpServer;
  let iperf: IperfServer | undefined;
  let key0: string;
  let key1: string;
  let cfgPath: string;
  const agents: Daemon[] = [];
  /** An agent left by a failed test must not keep the next one from starting (one per namespace). */
  async function agentWith(args: string[]): Promise<Daemon> {
    for (const a of agents.splice(0)) await a.stop().catch(() => undefined);
    const a = await startDaemon(topo, 'pc', 'agent', args, dir);
    agents.push(a);
    return a;
  }

  const config = (agentKey: 'k0' | 'k1'): string =>
    [
      'keys:',
      `  k0: ${key0}`,
      `  k1: { file: ${key1}, id: 1 }`,
      'tags:',
      '  web: 300',
      '  bulk: 5201',
      'agent:',
      `  key: ${agentKey}`,
      '  egress:',
      '    rules:',
      '      - { name: web, dst: { ports: [8080], proto: tcp }, action: allow, tag: web }',
      '      - { name: bulk, dst: { ports: [5201], proto: tcp }, action: allow, tag: bulk }',
      '',
    ].join('\n');

  before(async () => {
    dir = makeTempDir('lw-v1-agent-');
    key0 = writeKey(dir, 'k0').path;
    key1 = writeKey(dir, 'k1').path;
    cfgPath = join(dir, 'agent.yaml');
    writeFileSync(cfgPath, config('k0'));
    topo = await createTopology(standardTopology({ subnetBase: 233 }));
    http = await startHttpServer(topo, 'srv', { bind: '::', port: 8080 });
    iperf = await startIperfServer(topo, 'srv', 5201);
  });

  after(async () => {
    for (const a of agents) await a.stop().catch(() => undefined);
    await iperf?.stop();
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * tcpdump on mb's pc link of what pc sends (full packets: the MAC covers the payload), and the
   * SYN-ACKs it gets (IPv6 without extension headers: the TCP flags are byte 53).
   */
  async function capture(name: string): Promise<{ file: string; proc: NsProcess }> {
    const file = join(dir, name);
    const pc4 = topo.addr('pc');
    const pc6 = topo.addr('pc', 6);
    const filter = `(tcp and (src host ${pc4} or src host ${pc6})) or (ip and tcp[tcpflags] & tcp-syn != 0) or (ip6 and ip6[6] == 6 and ip6[53] & 2 != 0)`;
    const proc = topo.spawn('mb', [
      'tcpdump',
      '--immediate-mode',
      '-i',
      topo.iface('mb', 'pc').name,
      '-nn',
      '-U',
      '-s',
      '0',
      '-w',
      file,
      filter,
    ]);
    await proc.waitForOutput(/listening on/, 10_000, 'stderr');
    return { file, proc };
  }

  async function pcapVerify(file: string, args: string[]): Promise<{ frames: Frame[]; summary: Record<string, number> }> {
    const r = await run([process.execPath, LABELWALL_BIN, 'pcap', 'verify', file, '--json', ...args], { timeoutMs: 120_000 });
    const lines = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = lines.find((l) => 'summary' in l)?.summary as Record<string, number>;
    assert.ok(summary, `pcap verify gave no summary (exit ${r.code}):\n${r.stderr}`);
    return { frames: lines.filter((l) => 'frame' in l) as unknown as Frame[], summary };
  }

  /** TCP option kinds of the SYN (or SYN-ACK) segments in a capture, as tshark dissects them. */
  async function synOptions(file: string, synAck = false): Promise<string[][]> {
    const r = await run(
      [
        'tshark',
        '-r',
        file,
        '-Y',
        `tcp.flags.syn == 1 && tcp.flags.ack == ${synAck ? 1 : 0}`,
        '-T',
        'fields',
        '-E',
        'occurrence=a',
        '-E',
        'aggregator=,',
        '-e',
        'tcp.option_kind',
      ],
      { check: true },
    );
    return r.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split(','));
  }

  test('IPv4 and IPv6 flows: SYN keeps MSS, window scale, SACK-permitted, timestamps; every segment a valid v1 label with the rule tag', async () => {
    const agent = await agentWith(['--config', cfgPath, '--queue-base', '30']);
    const st = await agent.status();
    assert.equal(st.config.profile, 'v1', 'v1 is the default profile');
    assert.equal(st.config.keyId, 0);
    // The tag travels through the conntrack mark: the agent's own CONNMARK rules.
    const rules = (await labelwallRules(topo, 'pc')).join('\n');
    assert.match(rules, /CONNMARK --save-mark --nfmask 0xffff0000 --ctmask 0xffff0000/);
    assert.match(rules, /CONNMARK --restore-mark --nfmask 0xffff0000 --ctmask 0xffff0000/);

    const cap = await capture('flows.pcap');
    const body = blob(300_000, 'v1up');
    for (const fam of [4, 6] as const) {
      const url = http.url(topo.addr('srv', fam));
      const [up, down] = await httpRequests(topo, 'pc', url, [
        { method: 'POST', path: '/echo', body },
        { method: 'GET', path: '/blob/2000000' },
      ]);
      assert.equal(up!.status, 200, `IPv${fam} upload: ${up!.error}`);
      assert.equal(firstDifference(up!.body, body), -1, `IPv${fam} upload echoed byte for byte`);
      assert.equal(down!.status, 200, `IPv${fam} download: ${down!.error}`);
      assert.equal(firstDifference(down!.body, blob(2_000_000)), -1, `IPv${fam} download byte for byte`);
    }
    // ss -ti on pc during a long connection: the kernel negotiated wscale, sack and timestamps.
    const hold = topo.spawn('pc', ['curl', '-s', '-o', '/dev/null', '--limit-rate', '200k', `${http.url(topo.addr('srv'))}/blob/2000000`]);
    const ss = await waitFor(
      async () => {
        const r = await topo.exec('pc', ['ss', '-tinH', 'dst', topo.addr('srv'), 'dport', '= :8080']);
        return /ESTAB/.test(r.stdout) || r.stdout.includes('wscale') ? r.stdout : undefined;
      },
      10_000,
      { what: 'an established connection in ss -ti', intervalMs: 100 },
    );
    await hold.stop(2000);
    await new Promise((r) => setTimeout(r, 300));
    await cap.proc.stop(3000, 'SIGINT');
    // This iproute2 prints no "ts"/"sack" words (not even on loopback without labelwall); what it
    // shows: wscale, and an MSS of 1460 - 20 (the label, the agent's clamp) - 12 (timestamps).
    assert.match(ss, /wscale:\d+,\d+/, `window scaling negotiated:\n${ss}`);
    assert.match(ss, /\bmss:1428\b/, `MSS 1460 - 20 (label) - 12 (timestamp option):\n${ss}`);

    const syns = await synOptions(cap.file);
    assert.ok(syns.length >= 5, `SYNs from pc captured: ${syns.length}`);
    for (const kinds of syns) {
      // 2 MSS, 3 window scale, 4 SACK-permitted, 8 timestamps, 253 the label.
      for (const k of ['2', '3', '4', '8', '253']) assert.ok(kinds.includes(k), `SYN options ${kinds.join(',')} lack kind ${k}`);
    }
    // The server answers every one of them in kind: all three negotiated, IPv4 and IPv6.
    const synAcks = await synOptions(cap.file, true);
    assert.equal(synAcks.length, syns.length, 'a SYN-ACK for every SYN');
    for (const kinds of synAcks)
      for (const k of ['3', '4', '8']) assert.ok(kinds.includes(k), `SYN-ACK options ${kinds.join(',')} lack kind ${k}`);

    const all = await pcapVerify(cap.file, ['--profile', 'v1', '--key-file', key0]);
    // The SYN-ACKs from srv are the only unlabelled frames; everything else is pc's.
    assert.equal(all.frames.filter((f) => f.verdict === 'unlabelled').length, synAcks.length, JSON.stringify(all.summary));
    const frames = all.frames.filter((f) => f.verdict !== 'unlabelled');
    const summary = all.summary;
    assert.ok(frames.length > 100, `frames: ${frames.length}`);
    assert.deepEqual(
      frames.filter((f) => f.verdict !== 'valid').slice(0, 5),
      [],
      `every segment from pc is a valid v1 label: ${JSON.stringify(summary)}`,
    );
    for (const f of frames) {
      assert.equal(f.profile, 'v1');
      assert.equal(f.keyId, 0);
      assert.equal(f.tag, 300, `frame ${f.frame}: the tag of rule "web"`);
    }
    // Control: the same capture against another key is refused, so "valid" above means something.
    const wrong = await pcapVerify(cap.file, ['--profile', 'v1', '--key-file', key1]);
    assert.equal(wrong.frames.filter((f) => f.verdict === 'valid').length, 0);
    assert.equal(wrong.frames.filter((f) => f.verdict === 'invalid').length, frames.length);
    assert.ok(frames.some((f) => f.frame > 0 && f.keyId === 0));
    const c = await agent.counters();
    assert.equal(c.dropped_malformed, 0);
    assert.ok(c.labelled! >= frames.length, `labelled ${c.labelled}`);
    assert.equal(await agent.stop(), 0);
    agents.pop();
  });

  test('SIGHUP in the middle of an iperf3 upload: labels switch from key id 0 to 1, zero invalid, nothing lost', async () => {
    writeFileSync(cfgPath, config('k0'));
    const agent = await agentWith(['--config', cfgPath, '--queue-base', '30']);
    const cap = await capture('rollover.pcap');
    // 40 Mbit/s for 6 s keeps the full capture small (the MAC covers the payload).
    const upload = runIperf(topo, 'pc', topo.addr('srv', 6), { seconds: 6, extra: ['-b', '40M'] });
    await new Promise((r) => setTimeout(r, 2500));
    writeFileSync(cfgPath, config('k1'));
    agent.proc.signal('SIGHUP');
    const switched = await waitFor(() => agent.logs().find((l) => /SIGHUP: labelling key reloaded/.test(String(l.msg))), 5000, {
      what: 'key reload log line',
    });
    assert.equal(switched.keyId, 1);
    const res = await upload;
    await new Promise((r) => setTimeout(r, 300));
    await cap.proc.stop(3000, 'SIGINT');
    const raw = res.raw as { end: { sum_sent: { bytes: number }; sum_received: { bytes: number } } };
    assert.equal(raw.end.sum_received.bytes, raw.end.sum_sent.bytes, 'every byte sent arrived');
    assert.ok(raw.end.sum_sent.bytes > 10_000_000, `bytes sent ${raw.end.sum_sent.bytes}`);
    assert.equal((await agent.status()).config.keyId, 1);

    const { frames, summary } = await pcapVerify(cap.file, ['--profile', 'v1', '--key-file', key0, '--key-file', `1=${key1}`]);
    assert.equal(summary.invalid ?? 0, 0, JSON.stringify(summary));
    assert.equal(
      summary.unlabelled ?? 0,
      (await synOptions(cap.file, true)).length,
      `only the SYN-ACKs from srv: ${JSON.stringify(summary)}`,
    );
    assert.equal(summary.malformed ?? 0, 0, JSON.stringify(summary));
    const labelled = frames.filter((f) => f.verdict !== 'unlabelled');
    assert.equal(labelled.filter((f) => f.verdict !== 'valid').length, 0);
    const ids = labelled.map((f) => f.keyId);
    const firstNew = ids.indexOf(1);
    assert.ok(firstNew > 100, `segments with key id 0 before the SIGHUP: ${firstNew}`);
    assert.ok(ids.length - firstNew > 100, `segments with key id 1 after it: ${ids.length - firstNew}`);
    assert.equal(
      ids.slice(firstNew).filter((i) => i === 0).length,
      0,
      'no segment with the old key after the switch (one queue: in order)',
    );
    assert.ok(
      labelled.every((f) => f.tag === 5201),
      'every segment of the iperf3 flows carries the tag of rule "bulk"',
    );
    // Control: with the old key alone, the segments after the switch are refused (unknown key id).
    const old = await pcapVerify(cap.file, ['--profile', 'v1', '--key-file', key0]);
    assert.equal(old.frames.filter((f) => f.verdict === 'invalid').length, ids.length - firstNew);
    const c = await agent.counters();
    assert.equal(c.dropped_malformed, 0, 'no segment dropped by the agent');
    assert.equal(await agent.stop(), 0);
    agents.pop();
  });

  test('a bad file on SIGHUP keeps the running key, with FILE:LINE:COL: KEY: REASON', async () => {
    writeFileSync(cfgPath, config('k0'));
    const agent = await agentWith(['--config', cfgPath, '--queue-base', '30']);
    writeFileSync(cfgPath, config('k1').replace('tag: bulk', 'tag: blk'));
    agent.proc.signal('SIGHUP');
    const rej = await waitFor(() => agent.logs().find((l) => /SIGHUP: config rejected/.test(String(l.msg))), 5000, { what: 'rejection' });
    assert.deepEqual(rej.problems, [
      `${cfgPath}:12:79: agent.egress.rules[1].tag: tag "blk" is not defined under tags (did you mean "bulk"?)`,
    ]);
    assert.equal((await agent.status()).config.keyId, 0, 'the running key stays');
    assert.ok(agent.proc.running);
    assert.equal(await agent.stop(), 0);
    agents.pop();
  });

  test('--profile compat: the 40-byte label, options erased, valid for pcap verify --profile compat', async () => {
    const agent = await agentWith(['--profile', 'compat', '--key-file', key0, '--queue-base', '30']);
    assert.equal((await agent.status()).config.profile, 'compat');
    const cap = await capture('compat.pcap');
    const [r] = await httpRequests(topo, 'pc', http.url(topo.addr('srv')), [{ method: 'GET', path: '/blob/200000' }]);
    assert.equal(r!.status, 200);
    assert.equal(firstDifference(r!.body, blob(200_000)), -1);
    await new Promise((res) => setTimeout(res, 300));
    await cap.proc.stop(3000, 'SIGINT');
    for (const kinds of await synOptions(cap.file)) assert.deepEqual(kinds, ['253'], 'compat: the label is the only option');
    const { frames, summary } = await pcapVerify(cap.file, ['--profile', 'compat', '--key-file', key0]);
    const labelled = frames.filter((f) => f.verdict !== 'unlabelled');
    assert.ok(labelled.length > 10);
    assert.equal(frames.length - labelled.length, (await synOptions(cap.file, true)).length, 'only the SYN-ACKs unlabelled');
    assert.equal(labelled.filter((f) => f.verdict !== 'valid').length, 0, JSON.stringify(summary));
    assert.equal(await agent.stop(), 0);
    agents.pop();
  });
});
