import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LabelKey } from '../../src/label/keys.js';
import { compat, verifyPacket } from '../../src/label/compat.js';
import { NAT_SRC, type VerifyResult } from '../../src/label/profile.js';
import { getProfile } from '../../src/label/registry.js';
import { decodeLink } from '../../src/pcap/link.js';
import { labelFrame, verifyFrame } from '../../src/pcap/frames.js';
import { labelCapture, verifyCapture } from '../../src/pcap/process.js';
import { readCapture, type CaptureRecord } from '../../src/pcap/reader.js';
import { arpFrame, demoPackets, detBytes, wrapIp } from '../helpers/synth.js';
import { buildTcpPacket } from '../../src/wire/build.js';
import { encodePcap, encodePcapng, type NgBlock } from './pcap-testutil.js';
import { packetChecksumsOk } from './wire-testutil.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-pcaplabel-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const key = LabelKey.fromBytes(detBytes('pcap-label test key', 32), 'test');
const otherKey = LabelKey.fromBytes(detBytes('another key', 32), 'other');

async function readAll(f: string): Promise<CaptureRecord[]> {
  const out: CaptureRecord[] = [];
  for await (const r of readCapture(f)) out.push(r);
  return out;
}

function tool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

test('link decoding: Ethernet (802.1Q, QinQ), raw, cooked v1/v2, null/loop; non-IP skipped; truncated malformed', () => {
  const ip4 = buildTcpPacket({ family: 4 });
  const ip6 = buildTcpPacket({ family: 6 });
  assert.deepEqual(decodeLink(1, wrapIp(1, ip4)), { kind: 'ip', ipOffset: 14, family: 4 });
  assert.deepEqual(decodeLink(1, wrapIp(1, ip6, [100])), { kind: 'ip', ipOffset: 18, family: 6 });
  assert.deepEqual(decodeLink(1, wrapIp(1, ip4, [10, 20])), { kind: 'ip', ipOffset: 22, family: 4 });
  assert.deepEqual(decodeLink(101, ip6), { kind: 'ip', ipOffset: 0, family: 0 });
  assert.deepEqual(decodeLink(228, ip4), { kind: 'ip', ipOffset: 0, family: 4 });
  assert.deepEqual(decodeLink(229, ip6), { kind: 'ip', ipOffset: 0, family: 6 });
  assert.deepEqual(decodeLink(113, wrapIp(113, ip4)), { kind: 'ip', ipOffset: 16, family: 4 });
  assert.deepEqual(decodeLink(276, wrapIp(276, ip6)), { kind: 'ip', ipOffset: 20, family: 6 });
  assert.deepEqual(decodeLink(0, wrapIp(0, ip6)), { kind: 'ip', ipOffset: 4, family: 6 });
  assert.deepEqual(decodeLink(108, wrapIp(108, ip4)), { kind: 'ip', ipOffset: 4, family: 4 });
  assert.deepEqual(decodeLink(1, arpFrame()), { kind: 'skipped', reason: 'not-ip (ethertype 0x0806)' });
  assert.equal(decodeLink(1, Buffer.alloc(10)).kind, 'malformed');
  assert.equal(decodeLink(1, wrapIp(1, ip4, [5]).subarray(0, 15)).kind, 'malformed');
  assert.equal(decodeLink(113, Buffer.alloc(15)).kind, 'malformed');
  assert.equal(decodeLink(276, Buffer.alloc(19)).kind, 'malformed');
  assert.equal(decodeLink(147, ip4).kind, 'skipped');
});

test('frames: Ethernet says IPv4 but the packet is IPv6 → malformed; ARP skipped', () => {
  const wrong = wrapIp(1, buildTcpPacket({ family: 6 }));
  wrong.writeUInt16BE(0x0800, 12);
  assert.deepEqual(verifyFrame(compat, 1, wrong, [key]), { verdict: 'malformed', reason: 'bad-ip-version' });
  assert.deepEqual(labelFrame(compat, 1, wrong, key), { labelled: false, verdict: 'malformed', reason: 'bad-ip-version' });
  assert.equal(verifyFrame(compat, 1, arpFrame(), [key]).verdict, 'skipped');
  assert.equal(labelFrame(compat, 1, arpFrame(), key).labelled, false);
});

/** The demo conversation before labelling: what `pcap label` gets as input. */
function plainPackets(): Buffer[] {
  return [
    buildTcpPacket({ family: 4, seq: 1, flags: 0x02, options: Uint8Array.of(2, 4, 5, 0xb4, 1, 3, 3, 7) }),
    buildTcpPacket({ family: 6, seq: 2, flags: 0x18, payload: detBytes('p6', 1000) }),
    buildTcpPacket({ family: 4, seq: 3, flags: 0x18, ipv4Options: Uint8Array.of(1, 1, 1, 0), payload: Buffer.from('with IP options') }),
    ...demoPackets(otherKey)
      .filter((p) => p.expect !== 'valid')
      .map((p) => p.ip),
  ];
}

interface Format {
  name: string;
  linktypes: number[];
  encode: (frames: Array<{ linktype: number; data: Buffer }>) => Buffer;
}

const frameTs = (i: number): bigint => 1_700_000_000_000_000n + BigInt(i) * 1000n;
const formats: Format[] = [
  ...[false, true].flatMap((be) =>
    [false, true].flatMap((ns) =>
      [1, 101, 113, 276].map(
        (lt): Format => ({
          name: `pcap ${be ? 'BE' : 'LE'} ${ns ? 'ns' : 'us'} linktype ${lt}`,
          linktypes: [lt],
          encode: (frames) =>
            encodePcap(
              { be, ns, linktype: lt },
              frames.map((f, i) => ({ tsSec: 1_700_000_000 + i, tsFrac: i * 7, data: f.data })),
            ),
        }),
      ),
    ),
  ),
  {
    name: 'pcap Ethernet with 802.1Q tags',
    linktypes: [1],
    encode: (frames) =>
      encodePcap(
        { be: false, ns: false, linktype: 1 },
        frames.map((f, i) => ({ tsSec: i, tsFrac: 0, data: f.data })),
      ),
  },
  ...[false, true].map(
    (be): Format => ({
      name: `pcapng ${be ? 'BE' : 'LE'} two interfaces (Ethernet, cooked v2 ns)`,
      linktypes: [1, 276],
      encode: (frames) => {
        const blocks: NgBlock[] = [{ shb: true }, { idb: { linktype: 1, name: 'eth0' } }, { idb: { linktype: 276, tsresol: 9 } }];
        frames.forEach((f, i) => {
          blocks.push({ epb: { ifIndex: f.linktype === 1 ? 0 : 1, ts: frameTs(i), data: f.data } });
        });
        return encodePcapng(be, blocks);
      },
    }),
  ),
];

for (const fmt of formats) {
  test(`label round trip: ${fmt.name}`, async () => {
    const vlan = fmt.name.includes('802.1Q');
    const frames = plainPackets().map((ip, i) => {
      const lt = fmt.linktypes[i % fmt.linktypes.length]!;
      return { linktype: lt, data: wrapIp(lt, ip, vlan ? [100 + i] : []) };
    });
    if (fmt.linktypes.includes(1)) frames.splice(2, 0, { linktype: 1, data: arpFrame() });
    const inFile = path.join(dir, `${fmt.name.replace(/\W+/g, '_')}.in`);
    const outFile = `${inFile}.out`;
    fs.writeFileSync(inFile, fmt.encode(frames));
    const before = await readAll(inFile);
    const counts = await labelCapture(compat, inFile, outFile, key);
    const after = await readAll(outFile);
    assert.equal(after.length, before.length);
    assert.equal(counts.total, before.length);
    let labelled = 0;
    for (let i = 0; i < before.length; i++) {
      const b = before[i]!;
      const a = after[i]!;
      assert.equal(a.linktype, b.linktype, `frame ${i + 1} link type`);
      assert.equal(a.tsSec, b.tsSec);
      assert.equal(a.tsFrac * b.tsUnitsPerSec, b.tsFrac * a.tsUnitsPerSec, `frame ${i + 1} timestamp`);
      const v = verifyFrame(compat, b.linktype, b.data, [key]);
      // Labelling replaces all options, so a wrong-length label is simply replaced too; broken
      // headers, fragments and non-TCP are copied.
      const shouldLabel = v.verdict === 'unlabelled' || v.verdict === 'invalid' || v.reason === 'bad-label-length';
      if (shouldLabel) {
        labelled++;
        assert.deepEqual(verifyFrame(compat, a.linktype, a.data, [key]), { verdict: 'valid', keyIndex: 0 }, `frame ${i + 1}`);
        const d = decodeLink(a.linktype, a.data);
        assert.ok(d.kind === 'ip');
        assert.deepEqual(a.data.subarray(0, d.ipOffset), b.data.subarray(0, d.ipOffset), 'link header kept');
        const ip = a.data.subarray(d.ipOffset);
        assert.ok(packetChecksumsOk(ip, ip[0]! >> 4 === 4 ? (ip[0]! & 15) * 4 : 40));
        assert.equal(a.origLen, b.origLen + (a.caplen - b.caplen));
      } else {
        assert.deepEqual(Buffer.from(a.data), Buffer.from(b.data), `frame ${i + 1} (${v.verdict}) copied unchanged`);
      }
    }
    assert.equal(counts.labelled, labelled);
    assert.ok(labelled >= 6);
    const vc = await verifyCapture(compat, outFile, [key]);
    assert.equal(vc.valid, labelled);
    assert.equal(vc.invalid, 0);
  });
}

test('what the output format cannot hold is a CaptureError naming the frame, and no partial output is left', async () => {
  const frame = wrapIp(1, buildTcpPacket({ family: 4 }));
  const cases: Array<[string, Buffer, 'pcap' | 'pcapng', RegExp]> = [
    // if_tsoffset -1 s moves a time-0 frame before 1970
    [
      'neg.pcapng',
      encodePcapng(false, [{ shb: true }, { idb: { linktype: 1, tsoffset: -1n } }, { epb: { ifIndex: 0, ts: 0n, data: frame } }]),
      'pcapng',
      /frame 1 cannot be written: timestamp -1 s/,
    ],
    // ... or past what pcap's 32-bit seconds hold
    [
      'late.pcapng',
      encodePcapng(false, [{ shb: true }, { idb: { linktype: 1, tsoffset: 1n << 33n } }, { epb: { ifIndex: 0, ts: 0n, data: frame } }]),
      'pcap',
      /frame 1 cannot be written: timestamp \d+ s is outside what pcap holds/,
    ],
    // a pcap link type beyond pcapng's 16 bits
    [
      'wide.pcap',
      encodePcap({ be: false, ns: false, linktype: 0x10001 }, [{ tsSec: 1, tsFrac: 0, data: frame }]),
      'pcapng',
      /frame 1 cannot be written: link type 65537/,
    ],
  ];
  for (const [name, bytes, format, want] of cases) {
    const inFile = path.join(dir, name);
    fs.writeFileSync(inFile, bytes);
    const out = path.join(dir, `${name}.out`);
    await assert.rejects(
      labelCapture(compat, inFile, out, key, { format }),
      (e: Error) => e.name === 'CaptureError' && want.test(e.message),
    );
    assert.ok(!fs.existsSync(out), name);
  }
});

test('pcapng with two link types cannot become pcap; the partial output is removed', async () => {
  const inFile = path.join(dir, 'two.pcapng');
  fs.writeFileSync(
    inFile,
    encodePcapng(false, [
      { shb: true },
      { idb: { linktype: 1 } },
      { idb: { linktype: 101 } },
      { epb: { ifIndex: 0, ts: 0n, data: wrapIp(1, buildTcpPacket({ family: 4 })) } },
      { epb: { ifIndex: 1, ts: 0n, data: buildTcpPacket({ family: 4 }) } },
    ]),
  );
  const out = path.join(dir, 'two.pcap');
  await assert.rejects(labelCapture(compat, inFile, out, key, { format: 'pcap' }), /link type 101 but the pcap output has 1/);
  assert.ok(!fs.existsSync(out));
  // ...but with one link type it works.
  const one = path.join(dir, 'one.pcapng');
  fs.writeFileSync(
    one,
    encodePcapng(false, [
      { shb: true },
      { idb: { linktype: 1, tsresol: 9 } },
      { epb: { ifIndex: 0, ts: 5_000_000_123n, data: wrapIp(1, buildTcpPacket({ family: 4 })) } },
    ]),
  );
  const r = await labelCapture(compat, one, out, key, { format: 'pcap' });
  assert.equal(r.labelled, 1);
  const [rec] = await readAll(out);
  assert.deepEqual([rec!.linktype, rec!.tsSec, rec!.tsFrac, rec!.tsUnitsPerSec], [1, 5, 123, 1e9]);
});

test('the shipped demo capture produces every verdict class as its notes say', async () => {
  const fixtures = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../test/fixtures');
  const keyHex = fs.readFileSync(path.join(fixtures, 'demo.key'), 'utf8').trim();
  const demoKey = LabelKey.fromBytes(Buffer.from(keyHex, 'hex'), 'demo');
  const verdicts: string[] = [];
  const counts = await verifyCapture(compat, path.join(fixtures, 'demo.pcap'), [demoKey], (_f, r) => {
    verdicts.push(r.verdict);
  });
  const expected = demoPackets(demoKey).map((p) => p.expect);
  expected.splice(4, 0, 'skipped'); // the ARP frame after the fourth packet
  assert.deepEqual(verdicts, expected);
  for (const v of ['valid', 'invalid', 'unlabelled', 'malformed', 'skipped'] as const) assert.ok(counts[v] > 0, v);
});

test('tcpdump and tshark read what pcap label wrote; tshark shows ExID 0x4677 and good checksums', async (t) => {
  if (!tool('tcpdump') || !tool('tshark')) {
    t.skip('tcpdump/tshark not installed (scripts/setup.sh installs them)');
    return;
  }
  const inFile = path.join(dir, 'tools.in.pcap');
  const frames = plainPackets()
    .slice(0, 3)
    .map((ip) => ({ tsSec: 1, tsFrac: 0, data: wrapIp(1, ip) }));
  fs.writeFileSync(inFile, encodePcap({ be: false, ns: false, linktype: 1 }, frames));
  for (const format of ['pcap', 'pcapng'] as const) {
    const outFile = path.join(dir, `tools.out.${format}`);
    await labelCapture(compat, inFile, outFile, key, { format });
    const td = execFileSync('tcpdump', ['-nn', '-v', '-r', outFile], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(td.match(/options \[unknown-253 0x4677/g)?.length, 3, td);
    assert.equal(td.match(/cksum 0x[0-9a-f]+ \(correct\)/g)?.length, 3, td);
    assert.ok(!/bad cksum|incorrect/.test(td), td);
    const v = execFileSync('tshark', ['-r', outFile, '-V', '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // tshark 4.0 prints the RFC 6994 experiment ID of kind 253 this way:
    assert.equal(v.match(/Experiment Identifier: Unknown \(0x4677\)/g)?.length, 3, v);
    assert.equal(v.match(/Kind: RFC3692-style Experiment 1 \(253\)/g)?.length, 3);
    assert.equal(v.match(/\[Checksum Status: Good\]/g)?.length, 3, v);
    assert.equal(v.match(/\[Header checksum status: Good\]/g)?.length, 2, v); // the two IPv4 packets
    assert.ok(!/Bad\]|\[incorrect/.test(v), v);
    const fields = execFileSync('tshark', ['-r', outFile, '-T', 'fields', '-e', 'tcp.options.experimental.exid', '-e', 'tcp.hdr_len'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    assert.deepEqual(fields.trim().split('\n'), ['0x4677\t60', '0x4677\t60', '0x4677\t60']);
  }
  // And the MAC tshark shows is the one we can verify: cross-check frame 1's data bytes.
  const out = await readAll(path.join(dir, 'tools.out.pcap'));
  const ip = out[0]!.data.subarray(14);
  assert.equal(verifyPacket(ip, [key]).verdict, 'valid');
});

test("pcapng with two sections: each section's interfaces (names, link types) carried to the output", async () => {
  const inFile = path.join(dir, 'sections.pcapng');
  const ip = buildTcpPacket({ family: 4, payload: Buffer.from('s') });
  fs.writeFileSync(
    inFile,
    encodePcapng(true, [
      { shb: true },
      { idb: { linktype: 1, name: 'first' } },
      { epb: { ifIndex: 0, ts: 1n, data: wrapIp(1, ip) } },
      { shb: true },
      { idb: { linktype: 101, name: 'second', tsresol: 9 } },
      { epb: { ifIndex: 0, ts: 2n, data: ip } },
    ]),
  );
  const out = path.join(dir, 'sections.out.pcapng');
  const r = await labelCapture(compat, inFile, out, key);
  assert.equal(r.labelled, 2);
  const recs = await readAll(out);
  assert.deepEqual(
    recs.map((x) => [x.linktype, x.iface?.name, x.tsUnitsPerSec, x.tsFrac, x.section, x.ifIndex]),
    [
      [1, 'first', 1e6, 1, 0, 0],
      [101, 'second', 1e9, 2, 0, 1],
    ],
  );
});

test('property: any frame bytes under any link type give a verdict, never an exception', async () => {
  const fc = (await import('fast-check')).default;
  fc.assert(
    fc.property(fc.constantFrom(0, 1, 101, 108, 113, 228, 229, 276, 147), fc.uint8Array({ maxLength: 120 }), (lt, bytes) => {
      const v = verifyFrame(compat, lt, bytes, [key]);
      assert.ok(['valid', 'invalid', 'unlabelled', 'malformed', 'skipped'].includes(v.verdict));
      const l = labelFrame(compat, lt, bytes, key);
      if (l.labelled) assert.equal(verifyFrame(compat, lt, l.frame, [key]).verdict, 'valid');
    }),
    { numRuns: 3000 },
  );
});

test('labelCapture with v1: every TCP frame over Ethernet labelled at its capture time with the tag and NAT flags; compact and trimmed counted', async () => {
  const k5 = key.withKeyId(5);
  const T = 1_764_633_607;
  const ts = Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2);
  const sack3 = Uint8Array.of(1, 1, 5, 26, ...detBytes('sack', 24));
  const dss = Uint8Array.of(30, 4, 0x20, 0);
  const ips = [
    buildTcpPacket({ family: 4, flags: 0x02, options: Uint8Array.of(2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7) }),
    buildTcpPacket({ family: 6, flags: 0x18, options: ts, payload: detBytes('v6 data', 300) }),
    buildTcpPacket({ family: 4, flags: 0x10, options: Buffer.concat([ts, sack3]) }), // 40 bytes: SACK trimmed
    buildTcpPacket({ family: 4, flags: 0x10, options: Buffer.concat([ts, Uint8Array.of(1, 1, 5, 10, ...detBytes('s1', 8)), dss]) }), // compact
  ];
  const inFile = path.join(dir, 'v1.in.pcap');
  const outFile = path.join(dir, 'v1.out.pcap');
  fs.writeFileSync(
    inFile,
    encodePcap({ be: false, ns: true, linktype: 1 }, [
      ...ips.map((ip, i) => ({ tsSec: T + i, tsFrac: 500, data: wrapIp(1, ip) })),
      { tsSec: T, tsFrac: 0, data: arpFrame() },
    ]),
  );
  const counts = await labelCapture(getProfile('v1'), inFile, outFile, k5, { tag: 300, nat: NAT_SRC });
  assert.deepEqual(counts, {
    total: 5,
    labelled: 4,
    skipped: 1,
    malformed: 0,
    compact: 1,
    sackTrimmed: 1,
    optionsRemoved: 0,
    format: 'pcap',
  });
  const results: VerifyResult[] = [];
  const vc = await verifyCapture(
    getProfile('any'),
    outFile,
    [k5],
    (_f, r) => {
      results.push(r);
    },
    undefined,
    { allowNat: NAT_SRC },
  );
  assert.equal(vc.valid, 4, JSON.stringify(results));
  assert.deepEqual(
    results.slice(0, 4).map((r) => [r.profile, r.keyId, r.tag, r.nat, r.compact]),
    [
      ['v1', 5, 300, 1, false],
      ['v1', 5, 300, 1, false],
      ['v1', 5, 300, 1, false],
      ['v1', 5, 300, 1, true],
    ],
  );
  // Control: judged without the NAT allowance, or far from the capture time, none is valid.
  assert.equal((await verifyCapture(getProfile('v1'), outFile, [k5])).valid, 0);
  const late = (await readAll(outFile)).map((r) => ({ tsSec: r.tsSec + 3600, tsFrac: 0, data: r.data }));
  const lateFile = path.join(dir, 'v1.late.pcap');
  fs.writeFileSync(lateFile, encodePcap({ be: false, ns: false, linktype: 1 }, late));
  const lc: VerifyResult[] = [];
  await verifyCapture(
    getProfile('v1'),
    lateFile,
    [k5],
    (_f, r) => {
      lc.push(r);
    },
    undefined,
    { allowNat: NAT_SRC },
  );
  assert.deepEqual(
    lc.slice(0, 4).map((r) => r.reason),
    ['stale-epoch', 'stale-epoch', 'stale-epoch', 'stale-epoch'],
  );
});
