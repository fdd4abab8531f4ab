// The agent's GSO path (agent.gso, the default) with real peers, through a verifier on the
// middlebox that drops anything not validly labelled: 100 MB uploads arrive byte for byte over
// IPv4 and IPv6 with v1 and compat; a capture on the middlebox is all valid labels and no
// segment is longer than the peer's MSS allows; the agent's counters show the super-packets
// took the new path. A path whose MTU is smaller than the interface's (mb→srv at 1400) still
// carries a transfer, and after the router's ICMP nothing leaves pc larger than the path; loss
// on a tbf with a tiny queue is recovered with labelled retransmissions.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../../src/lab/tmp.js';
import { LABELWALL_BIN, middleboxVerifierArgs, startDaemon, writeKey, type Daemon } from '../../src/lab/labelwall.js';
import { createTopology, run, standardTopology, type NsProcess, type Topology } from '../../src/lab/netns.js';
import { startHttpServer, type HttpServer } from '../../src/lab/http.js';
import { runIperf, startIperfServer, type IperfServer } from '../../src/lab/iperf.js';

type Profile = 'v1' | 'compat';

describe('agent GSO path: super-packets cut, labelled and sent by the agent', { timeout: 420_000 }, () => {
  let topo: Topology;
  let dir: string;
  let http: HttpServer;
  let iperf: IperfServer;
  let key: string;
  const files = new Map<number, { path: string; sha256: string }>();
  const daemons: Daemon[] = [];

  async function stopAll(): Promise<void> {
    for (const d of daemons.splice(0)) await d.stop().catch(() => undefined);
  }

  /** A verifier on mb that drops what is not validly labelled, then the agent on pc; `both` go to each. */
  async function pair(profile: Profile, agentArgs: string[] = [], both: string[] = []): Promise<{ agent: Daemon; verifier: Daemon }> {
    await stopAll();
    const verifier = await startDaemon(
      topo,
      'mb',
      'verifier',
      middleboxVerifierArgs(topo, { profile, keyFile: key, action: 'drop' }, ['--queue-base', '50', ...both]),
      dir,
    );
    daemons.push(verifier);
    const agent = await startDaemon(
      topo,
      'pc',
      'agent',
      ['--profile', profile, '--key-file', key, '--queue-base', '40', ...both, ...agentArgs],
      dir,
    );
    daemons.push(agent);
    return { agent, verifier };
  }

  /** A file of `mb` random megabytes in the test's directory, and its SHA-256. */
  function file(mb: number): { path: string; sha256: string } {
    let f = files.get(mb);
    if (!f) {
      const data = randomBytes(mb * 1_000_000);
      const path = join(dir, `up-${mb}.bin`);
      writeFileSync(path, data);
      f = { path, sha256: createHash('sha256').update(data).digest('hex') };
      files.set(mb, f);
    }
    return f;
  }

  /** Uploads the file from pc to srv's /sha256 (flask hashes what arrived); asserts it arrived byte for byte. */
  async function upload(fam: 4 | 6, mb: number, what: string): Promise<void> {
    const f = file(mb);
    const url = `${http.url(topo.addr('srv', fam))}/sha256`;
    const r = await topo.exec('pc', ['curl', '-sS', '--max-time', '90', '-H', 'Expect:', '--data-binary', `@${f.path}`, url], {
      timeoutMs: 100_000,
    });
    assert.equal(r.code, 0, `${what}: curl failed: ${r.stderr}`);
    const got = JSON.parse(r.stdout) as { sha256: string; length: number };
    assert.equal(got.length, mb * 1_000_000, `${what}: bytes that arrived`);
    assert.equal(got.sha256, f.sha256, `${what}: the upload arrived byte for byte`);
  }

  /** tcpdump on one of mb's interfaces, full packets; a 64 MiB buffer, so the capture keeps up with the flow. */
  async function capture(name: string, toward: string, filter: string, snaplen = 0): Promise<{ file: string; proc: NsProcess }> {
    const path = join(dir, name);
    const proc = topo.spawn('mb', [
      'tcpdump',
      '--immediate-mode',
      '-B',
      '65536',
      '-i',
      topo.iface('mb', toward).name,
      '-nn',
      '-U',
      '-s',
      String(snaplen),
      '-w',
      path,
      filter,
    ]);
    await proc.waitForOutput(/listening on/, 10_000, 'stderr');
    return { file: path, proc };
  }

  async function tsharkFields(pcap: string, filter: string, fields: string[]): Promise<string[][]> {
    const r = await run(['tshark', '-r', pcap, '-Y', filter, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], {
      check: true,
      timeoutMs: 120_000,
    });
    return r.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split('\t'));
  }

  async function pcapVerify(pcap: string, profile: Profile): Promise<Record<string, number>> {
    const r = await run([process.execPath, LABELWALL_BIN, 'pcap', 'verify', pcap, '--json', '--profile', profile, '--key-file', key], {
      timeoutMs: 120_000,
    });
    const line = r.stdout.split('\n').find((l) => l.includes('"summary"'));
    assert.ok(line, `pcap verify gave no summary (exit ${r.code}): ${r.stderr}`);
    return (JSON.parse(line) as { summary: Record<string, number> }).summary;
  }

  before(async () => {
    dir = makeTempDir('lw-gso-');
    key = writeKey(dir, 'k').path;
    topo = await createTopology(standardTopology({ subnetBase: 234 }));
    http = await startHttpServer(topo, 'srv', { bind: '::', port: 8080 });
    iperf = await startIperfServer(topo, 'srv', 5201);
  });

  after(async () => {
    await stopAll();
    await iperf?.stop();
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const profile of ['v1', 'compat'] as const) {
    test(`${profile}: 100 MB uploads over IPv4 and IPv6 and iperf3, byte for byte, every segment valid at the verifier`, async () => {
      const { agent, verifier } = await pair(profile);
      assert.equal((await agent.status()).config.gso, true, 'the GSO path is the default');
      for (const fam of [4, 6] as const) await upload(fam, 100, `${profile} IPv${fam}`);
      const res = await runIperf(topo, 'pc', topo.addr('srv', 6), { seconds: 2 });
      assert.ok(res.receivedBps > 1e6, `iperf3: ${res.receivedBps} bit/s`);
      const a = await agent.counters();
      const v = await verifier.counters();
      // 2 x 100 MB of 1,400-byte segments: at least 140,000 labelled segments, nearly all cut by the agent.
      assert.ok(a.gso_packets! > 1000, `super-packets taken whole: ${JSON.stringify(a)}`);
      assert.ok(a.gso_segments! > 10 * a.gso_packets!, `segments cut from them: ${a.gso_segments} from ${a.gso_packets}`);
      assert.ok(a.labelled! >= 140_000, `labelled: ${a.labelled}`);
      assert.equal(a.gso_dropped, 0);
      assert.equal(a.transmit_errors, 0);
      assert.equal(a.segment_size_fallback, 0, 'every cut at the size the socket reported');
      assert.equal(a.dropped_malformed, 0);
      assert.ok(v.valid! >= a.gso_segments!, `valid at the verifier ${v.valid} >= cut ${a.gso_segments}`);
      assert.equal(v.invalid, 0, JSON.stringify(v));
      assert.equal(v.unlabelled, 0, JSON.stringify(v));
      assert.equal(v.malformed, 0, JSON.stringify(v));
    });
  }

  test('v1: a capture on the middlebox is all valid labels, no segment longer than the MTU or the peer MSS; retransmissions labelled under loss', async () => {
    const { agent, verifier } = await pair('v1');
    // A tbf with a tiny queue on mb -> srv drops bursts: TCP recovers with SACK; the capture on
    // mb's pc link (before the tbf) holds the retransmitted segments as pc sent them.
    await topo.check('mb', [
      'tc',
      'qdisc',
      'add',
      'dev',
      topo.iface('mb', 'srv').name,
      'root',
      'tbf',
      'rate',
      '300mbit',
      'burst',
      '20kb',
      'limit',
      '12kb',
    ]);
    try {
      const pc4 = topo.addr('pc');
      const pc6 = topo.addr('pc', 6);
      const cap = await capture(
        'gso.pcap',
        'pc',
        `tcp and (src host ${pc4} or src host ${pc6} or tcp[tcpflags] & tcp-syn != 0 or (ip6 and ip6[53] & 2 != 0))`,
      );
      for (const fam of [4, 6] as const) await upload(fam, 20, `under loss, IPv${fam}`);
      await new Promise((r) => setTimeout(r, 300));
      await cap.proc.stop(3000, 'SIGINT');
      const summary = await pcapVerify(cap.file, 'v1');
      const synAcks = await tsharkFields(cap.file, 'tcp.flags.syn == 1 && tcp.flags.ack == 1', ['tcp.options.mss_val', 'tcp.dstport']);
      assert.equal(summary.unlabelled ?? 0, synAcks.length, `only srv's SYN-ACKs are unlabelled: ${JSON.stringify(summary)}`);
      assert.equal(summary.invalid ?? 0, 0, JSON.stringify(summary));
      assert.equal(summary.malformed ?? 0, 0, JSON.stringify(summary));
      assert.ok((summary.valid ?? 0) > 28_000, `valid frames: ${JSON.stringify(summary)}`);
      // Segment sizes: IP length within the 1500-byte MTU; payload plus options within the MSS srv announced.
      const mss = new Map(synAcks.map(([m, port]) => [port!, Number(m)]));
      const segs = await tsharkFields(cap.file, `tcp.len > 0 && (ip.src == ${pc4} || ipv6.src == ${pc6})`, [
        'ip.len',
        'ipv6.plen',
        'tcp.hdr_len',
        'tcp.len',
        'tcp.srcport',
      ]);
      assert.ok(segs.length > 28_000, `data segments: ${segs.length}`);
      let largest = 0;
      for (const [ipLen, plen, hdr, len, port] of segs) {
        const total = ipLen ? Number(ipLen) : Number(plen) + 40;
        largest = Math.max(largest, total);
        assert.ok(total <= 1500, `a ${total}-byte packet on a 1500-byte link`);
        const peerMss = mss.get(port!);
        assert.ok(peerMss, `the SYN-ACK of port ${port}`);
        assert.ok(Number(len) + Number(hdr) - 20 <= peerMss, `payload ${len} + options ${Number(hdr) - 20} > MSS ${peerMss}`);
      }
      assert.equal(largest, 1500, 'segments are cut as large as the path allows');
      // Loss happened (the control: without it, "retransmissions are labelled" would say nothing).
      const retrans = await tsharkFields(cap.file, 'tcp.analysis.retransmission || tcp.analysis.fast_retransmission', ['frame.number']);
      assert.ok(retrans.length > 0, 'the tbf dropped segments and pc retransmitted them');
      const v = await verifier.counters();
      assert.equal(v.invalid, 0, JSON.stringify(v));
      assert.equal(v.unlabelled, 0, JSON.stringify(v));
      assert.ok((await agent.counters()).gso_packets! > 100);
    } finally {
      await topo.exec('mb', ['tc', 'qdisc', 'del', 'dev', topo.iface('mb', 'srv').name, 'root']);
    }
  });

  test("v1: a path MTU below the interface MTU (mb's link to srv at 1400): transfers complete, nothing larger than the path after the ICMP", async () => {
    const mbSrv = topo.iface('mb', 'srv');
    // Only the router's side: srv keeps 1500 and announces an MSS of 1460, so only the ICMP
    // from mb can tell pc (srv's own MTU at 1400 would show in its MSS instead).
    await topo.check('mb', ['ip', 'link', 'set', 'dev', mbSrv.name, 'mtu', '1400']);
    try {
      for (const fam of [4, 6] as const) await topo.exec('pc', ['ip', `-${fam}`, 'route', 'flush', 'cache']);
      const { agent, verifier } = await pair('v1');
      const cap = await capture(
        'pmtu.pcap',
        'pc',
        `(tcp and (src host ${topo.addr('pc')} or src host ${topo.addr('pc', 6)})) or (icmp and icmp[0] == 3 and icmp[1] == 4) or (icmp6 and ip6[40] == 2)`,
        128,
      );
      for (const fam of [4, 6] as const) await upload(fam, 20, `path MTU 1400, IPv${fam}`);
      await new Promise((r) => setTimeout(r, 300));
      await cap.proc.stop(3000, 'SIGINT');
      // The router told pc the path MTU (the control: the path really was smaller).
      const frames = await tsharkFields(cap.file, 'tcp || icmp || icmpv6', [
        'frame.number',
        'icmp.type',
        'icmpv6.type',
        'ip.len',
        'ipv6.plen',
        'icmp.mtu',
        'icmpv6.mtu',
      ]);
      for (const fam of [4, 6] as const) {
        const icmp = frames.filter((f) => (fam === 4 ? f[1] === '3' : f[2] === '2'));
        assert.ok(icmp.length > 0, `IPv${fam}: mb sent "fragmentation needed" / "packet too big"`);
        assert.equal(Number(fam === 4 ? icmp[0]![5] : icmp[0]![6]), 1400);
        const first = Number(icmp[0]![0]);
        // Segments pc sent a little after the first ICMP (in flight before it may still be large).
        const later = frames.filter(
          (f) => Number(f[0]) > first + 200 && f[1] === '' && f[2] === '' && (fam === 4 ? f[3] !== '' : f[4] !== ''),
        );
        assert.ok(later.length > 1000, `IPv${fam} segments after the ICMP: ${later.length}`);
        const big = later.filter((f) => (fam === 4 ? Number(f[3]) : Number(f[4]) + 40) > 1400);
        assert.deepEqual(big.slice(0, 3), [], `IPv${fam}: segments larger than the path MTU after the ICMP`);
      }
      const v = await verifier.counters();
      assert.equal(v.invalid, 0, JSON.stringify(v));
      assert.equal(v.unlabelled, 0, JSON.stringify(v));
      assert.ok((await agent.counters()).gso_packets! > 100);
    } finally {
      await topo.exec('mb', ['ip', 'link', 'set', 'dev', mbSrv.name, 'mtu', '1500']);
    }
  });

  test('--queues 2 on both: four flows spread over both workers of each (by source port), all valid', async () => {
    // With a port selection too: multiport and the queue rules' tcp match in one rule.
    const { agent, verifier } = await pair('v1', [], ['--queues', '2', '--port', '5201,8080']);
    // Client ports 40000-40003 (--cport): port bit 1 is 0, 0, 1, 1, so two flows per queue.
    // (With ports the kernel picks, four flows land on one queue one time in eight, as with any hash.)
    const res = await runIperf(topo, 'pc', topo.addr('srv'), { seconds: 2, parallel: 4, extra: ['--cport', '40000'] });
    assert.ok(res.bytesReceived > 1e6, `iperf3 -P 4: ${res.bytesReceived} bytes`);
    for (const [d, qs] of [
      [agent, [40, 41]],
      [verifier, [50, 51]],
    ] as const) {
      const st = await d.status();
      for (const q of qs) {
        const w = st.queues.find((x) => x.queue === q);
        assert.ok(w && w.received > 100, `queue ${q} took its share: ${JSON.stringify(st.queues)}`);
      }
    }
    const v = await verifier.counters();
    assert.equal(v.invalid, 0, JSON.stringify(v));
    assert.equal(v.unlabelled, 0, JSON.stringify(v));
    await stopAll();
  });

  test('--no-gso: the kernel cuts, every segment takes its own queue trip; still byte for byte and valid', async () => {
    const { agent, verifier } = await pair('v1', ['--no-gso']);
    assert.equal((await agent.status()).config.gso, false);
    await upload(4, 20, '--no-gso');
    const a = await agent.counters();
    assert.equal(a.gso_packets, 0, 'no super-packet reached the agent');
    assert.ok(a.labelled! > 14_000);
    const v = await verifier.counters();
    assert.equal(v.invalid, 0);
    assert.equal(v.unlabelled, 0);
    assert.ok(v.valid! >= 14_000);
    await stopAll();
  });
});
