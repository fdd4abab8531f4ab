// Tests of the peer programs through the standard topology, without labelwall: SSH echo,
// iperf3, the sink/flow-client/forge injection kit, and the independent Python compat label.
// The injection tests are the positive controls for labelwall's e2e tests: with nobody
// verifying, every forged segment DOES reach the server's socket.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createTopology, run, standardTopology, type Topology } from '../../src/lab/netns.js';
import { startSshServer, sshEchoOpenssh, sshEchoParamiko, type SshServer } from '../../src/lab/ssh.js';
import { startIperfServer, runIperf } from '../../src/lab/iperf.js';
import { forge, injectIntoFlow, pythonCompatLabel, startFlowClient, startSink, type ForgeKind } from '../../src/lab/inject.js';
import { LabelKey, labelPacket, verifyPacket } from '../../src/label/index.js';
import { blob, firstDifference } from '../../src/lab/blob.js';
import { PYTHON, PEERS_DIR } from '../../src/lab/paths.js';

// The paper's reference key: 24 zero bytes then ASCII "firewall". A test vector only.
const PAPER_KEY = Buffer.concat([Buffer.alloc(24), Buffer.from('firewall')]);

describe('peers through the standard topology', () => {
  let topo: Topology;
  let ssh: SshServer;

  before(async () => {
    topo = await createTopology(standardTopology());
    ssh = await startSshServer(topo, 'srv', { port: 2222 });
  });
  after(async () => {
    await topo?.destroy();
  });

  test('SSH echo through mb: paramiko over IPv4, OpenSSH client over IPv6, 1 MiB each', async () => {
    const p = await sshEchoParamiko(topo, 'pc', ssh, topo.addr('srv', 4), { kb: 1024 });
    assert.ok(p.ok, JSON.stringify(p));
    assert.equal(p.received, 1024 * 1024);
    const o = await sshEchoOpenssh(topo, 'pc', ssh, topo.addr('srv', 6), { kb: 1024 });
    assert.ok(o.ok, JSON.stringify(o));
    assert.equal(o.sha256_received, o.sha256_sent);
    assert.match(ssh.proc.stderr, /Accepted publickey for root from 10\.200\.1\.2/);
    assert.match(ssh.proc.stderr, /Accepted publickey for root from fd00:200:1::2/);
  });

  test('SSH echo reports failure when the server is unreachable', async () => {
    const bad = await sshEchoParamiko(topo, 'uc', { ...ssh, port: 2223 }, topo.addr('srv'), { kb: 1, timeoutSec: 3 });
    assert.equal(bad.ok, false);
    assert.match(bad.error ?? '', /refused|Unable to connect/i);
  });

  test('iperf3 -t 2 through mb (IPv4), and -R over IPv6', async () => {
    const srv = await startIperfServer(topo, 'srv', 5201);
    const r = await runIperf(topo, 'pc', topo.addr('srv'), { seconds: 2 });
    assert.ok(r.bytesReceived > 10 * 1024 * 1024, `only ${r.bytesReceived} bytes`);
    assert.ok(r.receivedBps > 100e6, `${(r.receivedBps / 1e9).toFixed(2)} Gbit/s`);
    const r6 = await runIperf(topo, 'pc', topo.addr('srv', 6), { seconds: 1, reverse: true });
    assert.ok(r6.bytesReceived > 1024 * 1024);
    await srv.stop();
  });

  test('a clean flow delivers exactly what the client sent (the sink records the socket byte stream)', async () => {
    const sink = await startSink(topo, 'srv', { port: 9000 });
    const flow = await startFlowClient(topo, 'pc', topo.addr('srv'), 9000);
    await flow.send(1000, 'a');
    const s1 = await flow.seq();
    await flow.send(2000, 'b');
    const s2 = await flow.seq();
    assert.equal((s2.sndNxt - s1.sndNxt) >>> 0, 2000, 'TCP_REPAIR seq numbers track the bytes sent');
    await flow.close();
    const d = await sink.done();
    const expected = Buffer.concat([blob(1000, 'a'), blob(2000, 'b')]);
    assert.equal(d.total, 3000);
    assert.equal(firstDifference(sink.received(), expected), -1);
  });

  // Each kind from a different place: the protected client itself (AF_PACKET, bypassing its
  // own netfilter), the unprotected client spoofing pc's address, and a raw socket on pc.
  const cases: { kind: ForgeKind; family: 4 | 6; from: 'pc' | 'uc'; via: 'packet' | 'raw' }[] = [
    { kind: 'nolabel', family: 4, from: 'pc', via: 'packet' },
    { kind: 'wrongkey', family: 6, from: 'uc', via: 'packet' },
    { kind: 'tampered', family: 4, from: 'uc', via: 'packet' },
    { kind: 'replay', family: 6, from: 'pc', via: 'packet' },
    { kind: 'valid', family: 4, from: 'pc', via: 'raw' },
    { kind: 'nolabel', family: 6, from: 'pc', via: 'raw' },
  ];
  for (const c of cases) {
    test(`forge ${c.kind} (IPv${c.family}, from ${c.from}, ${c.via}) reaches the server socket when nobody verifies`, async () => {
      const port = 9100 + cases.indexOf(c);
      const sink = await startSink(topo, 'srv', { port });
      const flow = await startFlowClient(topo, 'pc', topo.addr('srv', c.family), port);
      await flow.send(1000, 'a');
      const f = await injectIntoFlow(topo, c.from, flow, c.kind, { keyHex: PAPER_KEY.toString('hex'), via: c.via });
      // The server read the forged bytes at exactly the next stream offset.
      await sink.waitForBytes(1000 + f.payload.length, 5000);
      await flow.send(2000, 'b');
      await flow.close();
      await sink.done();
      const got = sink.received();
      assert.equal(firstDifference(got.subarray(0, 1000), blob(1000, 'a')), -1);
      assert.ok(got.subarray(1000, 1000 + f.payload.length).equals(f.payload), 'forged payload at offset 1000');
      // What was sent is what the kind says.
      const pkt = Buffer.from(f.packetHex, 'hex');
      const tcpOff = c.family === 4 ? (pkt[0]! & 0x0f) * 4 : 40;
      const dataOff = (pkt[tcpOff + 12]! >> 4) * 4;
      if (c.kind === 'nolabel') {
        assert.equal(f.optionHex, null);
        assert.equal(dataOff, 20);
      } else {
        assert.equal(dataOff, 60);
        const opt = pkt.subarray(tcpOff + 20, tcpOff + 60);
        assert.equal(opt.toString('hex'), f.optionHex);
        assert.equal(opt.subarray(0, 8).toString('hex'), 'fd28467700000000');
        const macOk = createHmac('sha256', PAPER_KEY)
          .update(Buffer.concat([u32(f.seq), f.payload]))
          .digest()
          .equals(opt.subarray(8));
        assert.equal(macOk, c.kind === 'valid', `label is valid only for kind valid (${c.kind})`);
      }
    });
  }
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

describe('independent implementations agree', () => {
  test('forge.py compat label equals HMAC-SHA256(key, seq||payload) computed with node:crypto', async () => {
    const vectors: [Buffer, number, Buffer][] = [
      [PAPER_KEY, 0, Buffer.alloc(0)],
      [PAPER_KEY, 1, Buffer.from('abc')],
      [PAPER_KEY, 0xffffffff, blob(1460, 'v')],
      [Buffer.from('11'.repeat(32), 'hex'), 0x80000000, blob(536, 'w')],
    ];
    for (const [key, seq, payload] of vectors) {
      const py = await pythonCompatLabel(key.toString('hex'), seq, payload);
      const mac = createHmac('sha256', key)
        .update(Buffer.concat([u32(seq), payload]))
        .digest();
      assert.equal(py, `fd28467700000000${mac.toString('hex')}`, `seq ${seq}, ${payload.length} bytes`);
    }
  });

  // forge.py's segments judged by src/label (the TypeScript implementation): each kind gets
  // the verdict it is meant to provoke, and TS labelling of the unlabelled segment reproduces
  // forge.py's `valid` segment byte for byte (option, lengths and both checksums).
  for (const family of [4, 6] as const) {
    test(`forge.py segments and src/label agree (IPv${family})`, async () => {
      const key = LabelKey.fromBytes(PAPER_KEY, 'paper test vector');
      const base = {
        src: family === 4 ? '10.200.1.2' : 'fd00:200:1::2',
        dst: family === 4 ? '10.200.3.2' : 'fd00:200:3::2',
        sport: 40000,
        dport: 9000,
        seq: 0xfffffff0,
        ack: 12345,
        keyHex: PAPER_KEY.toString('hex'),
        dryRun: true,
        payload: blob(300, 'seg'),
      };
      const expect: Record<ForgeKind, string> = {
        nolabel: 'unlabelled',
        wrongkey: 'invalid',
        tampered: 'invalid',
        replay: 'invalid',
        valid: 'valid',
      };
      const pkts = {} as Record<ForgeKind, Buffer>;
      for (const kind of Object.keys(expect) as ForgeKind[]) {
        const f = await forge(null, '', kind, base);
        pkts[kind] = Buffer.from(f.packetHex, 'hex');
        assert.equal(verifyPacket(pkts[kind], [key]).verdict, expect[kind], kind);
      }
      const other = LabelKey.fromBytes(Buffer.alloc(32, 7));
      assert.equal(verifyPacket(pkts.valid, [other]).verdict, 'invalid');
      assert.equal(verifyPacket(pkts.valid, [other, key]).keyIndex, 1);
      const labelled = labelPacket(pkts.nolabel, key);
      assert.ok(labelled.ok);
      assert.equal(labelled.packet.toString('hex'), pkts.valid.toString('hex'));
    });
  }

  test('blob.py and blob.ts produce the same bytes', async () => {
    for (const [n, tag] of [
      [0, 'blob'],
      [1, 'x'],
      [136, 'blob'],
      [100_001, 'ssh'],
      [5_000_000, 'big'],
    ] as const) {
      const r = await run(
        [
          PYTHON,
          '-c',
          `import sys; sys.path.insert(0, ${JSON.stringify(PEERS_DIR)}); from blob import blob; sys.stdout.buffer.write(blob(${n}, ${JSON.stringify(tag)}))`,
        ],
        { check: true },
      );
      assert.ok(r.stdoutBuffer.equals(blob(n, tag)), `n=${n} tag=${tag}`);
    }
  });
});
