import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CaptureError } from '../../src/pcap/errors.js';
import { CaptureReader, readCapture, type CaptureRecord } from '../../src/pcap/reader.js';
import { PcapWriter, PcapngWriter } from '../../src/pcap/writer.js';
import { CHUNK_BYTES } from '../../src/pcap/source.js';
import { detBytes } from '../helpers/synth.js';
import { encodePcap, encodePcapng, type TestRecord } from './pcap-testutil.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-pcap-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(bytes: Buffer): string {
  const f = path.join(dir, `f${n++}`);
  fs.writeFileSync(f, bytes);
  return f;
}

async function readAll(f: string): Promise<CaptureRecord[]> {
  const out: CaptureRecord[] = [];
  for await (const r of readCapture(f)) out.push(r);
  return out;
}

/** The records of a file that ends inside a record, and what the reader says of the cut. */
async function readCut(f: string): Promise<{ records: CaptureRecord[]; truncated: CaptureError }> {
  const reader = await CaptureReader.open(f);
  const records: CaptureRecord[] = [];
  try {
    for await (const r of reader.records()) records.push(r);
  } finally {
    await reader.close();
  }
  assert.ok(reader.truncated instanceof CaptureError, 'the reader says the file is cut');
  return { records, truncated: reader.truncated };
}

async function readError(f: string): Promise<CaptureError> {
  try {
    await readAll(f);
  } catch (e) {
    assert.ok(e instanceof CaptureError, String(e));
    return e;
  }
  assert.fail('expected a CaptureError');
}

const recs: TestRecord[] = [
  { tsSec: 1_700_000_000, tsFrac: 123456, data: detBytes('a', 60) },
  { tsSec: 1_700_000_001, tsFrac: 999999, data: detBytes('b', 1514), origLen: 1600 },
  { tsSec: 1_700_000_002, tsFrac: 0, data: new Uint8Array(0) },
];

for (const be of [false, true]) {
  for (const ns of [false, true]) {
    test(`pcap ${be ? 'big' : 'little'}-endian, ${ns ? 'nano' : 'micro'}seconds: every field read back`, async () => {
      const f = file(encodePcap({ be, ns, linktype: 101, snaplen: 4096 }, recs));
      const reader = await CaptureReader.open(f);
      assert.deepEqual({ ...reader.info }, { format: 'pcap', bigEndian: be, nanosecond: ns, linktype: 101, snaplen: 4096 });
      await reader.close();
      const got = await readAll(f);
      assert.equal(got.length, 3);
      got.forEach((r, i) => {
        assert.equal(r.frame, i + 1);
        assert.equal(r.linktype, 101);
        assert.equal(r.tsSec, recs[i]!.tsSec);
        assert.equal(r.tsFrac, recs[i]!.tsFrac);
        assert.equal(r.tsUnitsPerSec, ns ? 1e9 : 1e6);
        assert.equal(r.caplen, recs[i]!.data.length);
        assert.equal(r.origLen, recs[i]!.origLen ?? recs[i]!.data.length);
        assert.deepEqual(Buffer.from(r.data), Buffer.from(recs[i]!.data));
      });
    });
  }
}

test('pcap link type field: FCS bits above the low 28 bits are ignored', async () => {
  const f = file(encodePcap({ be: false, ns: false, linktype: 1 | 0x10000000 }, recs.slice(0, 1)));
  const [r] = await readAll(f);
  assert.equal(r!.linktype, 1);
});

for (const be of [false, true]) {
  test(`pcapng ${be ? 'big' : 'little'}-endian: two interfaces, tsresol, EPB, SPB, unknown blocks, two sections`, async () => {
    const d1 = detBytes('x', 100);
    const d2 = detBytes('y', 1500);
    const f = file(
      encodePcapng(be, [
        { shb: true },
        { idb: { linktype: 1, snaplen: 262144, name: 'eth0' } },
        { unknown: { type: 0x0bad, size: 20 } },
        { idb: { linktype: 276, tsresol: 9 } },
        { epb: { ifIndex: 0, ts: 1_700_000_000_123_456n, data: d1 } },
        { epb: { ifIndex: 1, ts: 1_700_000_000_987_654_321n, data: d2, origLen: 2000 } },
        { unknown: { type: 5, size: 8 } }, // an Interface Statistics Block: skipped
        { spb: { data: d1 } },
        { shb: true },
        { idb: { linktype: 101, tsresol: 0x80 | 10 } },
        { epb: { ifIndex: 0, ts: (5n << 10n) + 512n, data: d2 } },
      ]),
    );
    const got = await readAll(f);
    assert.deepEqual(
      got.map((r) => [r.frame, r.linktype, r.ifIndex, r.section, r.tsSec, r.tsFrac, r.tsUnitsPerSec, r.caplen, r.origLen]),
      [
        [1, 1, 0, 0, 1_700_000_000, 123_456, 1e6, 100, 100],
        [2, 276, 1, 0, 1_700_000_000, 987_654_321, 1e9, 1500, 2000],
        [3, 1, 0, 0, 0, 0, 1e6, 100, 100],
        [4, 101, 0, 1, 5, 512, 1024, 1500, 1500],
      ],
    );
    assert.deepEqual(Buffer.from(got[1]!.data), d2);
    assert.deepEqual(Buffer.from(got[2]!.data), d1);
  });
}

test('our writers round-trip through the reader (pcap us/ns, pcapng with two interfaces)', async () => {
  const f1 = path.join(dir, 'w1.pcap');
  const w1 = await PcapWriter.create(f1, { linktype: 113, nanosecond: true });
  await w1.write(detBytes('p', 70), { tsSec: 10, tsFrac: 5, tsUnitsPerSec: 1e6 }, 90);
  await w1.close();
  const [r1] = await readAll(f1);
  assert.deepEqual([r1!.linktype, r1!.tsSec, r1!.tsFrac, r1!.tsUnitsPerSec, r1!.origLen], [113, 10, 5000, 1e9, 90]);

  const f2 = path.join(dir, 'w2.pcapng');
  const w2 = await PcapngWriter.create(f2);
  const a = await w2.addInterface({ linktype: 1, name: 'lo' });
  const b = await w2.addInterface({ linktype: 101, tsUnitsPerSec: 1e9 });
  await w2.write(b, detBytes('q', 33), { tsSec: 1_800_000_000, tsFrac: 123_456_789, tsUnitsPerSec: 1e9 });
  await w2.write(a, detBytes('r', 64), { tsSec: 1_800_000_001, tsFrac: 42, tsUnitsPerSec: 1e6 });
  await w2.close();
  const reader = await CaptureReader.open(f2);
  const got: CaptureRecord[] = [];
  for await (const r of reader.records()) got.push(r);
  assert.deepEqual(
    reader.interfaces.map((i) => [i.linktype, i.name, i.tsUnitsPerSec]),
    [
      [1, 'lo', 1e6],
      [101, undefined, 1e9],
    ],
  );
  await reader.close();
  assert.deepEqual(
    got.map((r) => [r.linktype, r.tsSec, r.tsFrac, r.caplen]),
    [
      [101, 1_800_000_000, 123_456_789, 33],
      [1, 1_800_000_001, 42, 64],
    ],
  );
  assert.deepEqual(Buffer.from(got[0]!.data), detBytes('q', 33));
});

test('records that cross read-chunk boundaries come out whole (streaming, not slurping)', async () => {
  const many: TestRecord[] = [];
  let total = 0;
  for (let i = 0; total < 7 * CHUNK_BYTES; i++) {
    // Mostly odd sizes up to 9000, plus records larger than a chunk and than the headroom.
    const len = i === 5 ? 3 * CHUNK_BYTES + 3 : i === 9 ? 100_000 : 1 + ((i * 7919) % 9000);
    many.push({ tsSec: i, tsFrac: i, data: detBytes(`c${i % 50}`, len) });
    total += 16 + len;
  }
  const f = file(encodePcap({ be: true, ns: false, linktype: 1 }, many));
  const reader = await CaptureReader.open(f);
  let i = 0;
  let firstPosition = -1;
  for await (const r of reader.records()) {
    assert.equal(r.caplen, many[i]!.data.length);
    assert.equal(r.tsSec, i);
    assert.deepEqual(Buffer.from(r.data), Buffer.from(many[i]!.data), `record ${i}`);
    if (firstPosition < 0) firstPosition = reader.position;
    i++;
  }
  await reader.close();
  assert.equal(i, many.length);
  // The first records came out when about one chunk had been parsed, not the whole file.
  assert.ok(firstPosition <= CHUNK_BYTES && firstPosition < reader.size / 4, `first record only after ${firstPosition} bytes`);
});

test('a file that ends inside its last record: every complete record, then `truncated` (no error)', async () => {
  const good = encodePcap({ be: false, ns: false, linktype: 1 }, recs);
  let c = await readCut(file(good.subarray(0, 24 + 16 + 60 + 16 + 100)));
  assert.equal(c.records.length, 1);
  assert.match(c.truncated.message, /f\d+: frame 2 cut short: file ends after 100 of 1514 bytes \(at byte offset 100\)/);
  c = await readCut(file(good.subarray(0, 24 + 16 + 60 + 5)));
  assert.equal(c.records.length, 1);
  assert.match(c.truncated.message, /truncated record header \(5 of 16 bytes\) \(at byte offset 100\)/);
  assert.equal(c.truncated.offset, 100);
  const ng = encodePcapng(false, [
    { shb: true },
    { idb: { linktype: 1 } },
    ...recs.map((r) => ({ epb: { ifIndex: 0, ts: 0n, data: r.data } })),
  ]);
  c = await readCut(file(ng.subarray(0, ng.length - 10)));
  assert.equal(c.records.length, recs.length - 1);
  assert.match(c.truncated.message, /block of type 0x6 cut short/);
  // Control: the whole file is not cut.
  const whole = await CaptureReader.open(file(good));
  for await (const _ of whole.records());
  await whole.close();
  assert.equal(whole.truncated, undefined);
});

test('damaged files give a CaptureError naming file, problem and offset', async () => {
  const good = encodePcap({ be: false, ns: false, linktype: 1 }, recs);
  let e = await readError(file(Buffer.from('this is not a capture file at all')));
  assert.match(e.message, /not a pcap or pcapng file \(magic 0x74686973\)/);
  e = await readError(file(Buffer.from([0xd4, 0xc3])));
  assert.match(e.message, /too short to be a capture file/);
  const huge = Buffer.from(good);
  huge.writeUInt32LE(0x7fffffff, 24 + 8);
  e = await readError(file(huge));
  assert.match(e.message, /claims 2147483647 captured bytes .* \(at byte offset 24\)/);
  e = await readError(path.join(dir, 'does-not-exist'));
  assert.match(e.message, /does-not-exist: no such file/);
  e = await readError(dir);
  assert.match(e.message, /not a regular file/);

  const ng = (blocks: Parameters<typeof encodePcapng>[1]): string => file(encodePcapng(false, blocks));
  e = await readError(ng([{ shb: true }, { epb: { ifIndex: 0, ts: 0n, data: detBytes('z', 10) } }]));
  assert.match(e.message, /refers to interface 0, but the section has 0/);
  e = await readError(
    file(
      Buffer.concat([
        encodePcap({ be: false, ns: false, linktype: 1 }, []).subarray(0, 0),
        encodePcapng(false, [{ idb: { linktype: 1 } }]),
      ]),
    ),
  );
  assert.match(e.message, /not a pcap or pcapng file/);
  const noShb = encodePcapng(false, [{ idb: { linktype: 1 } }]);
  e = await readError(file(Buffer.concat([Buffer.from([0x0a, 0x0d, 0x0d, 0x0a]), noShb.subarray(4)])));
  assert.match(e.message, /bad byte-order magic|section header/);
  const badLen = encodePcapng(false, [{ shb: true }, { idb: { linktype: 1 } }]);
  badLen.writeUInt32LE(13, badLen.length - 20 + 4);
  e = await readError(file(badLen));
  assert.match(e.message, /invalid length 13/);
  const mismatch = encodePcapng(false, [{ shb: true }, { idb: { linktype: 1 } }]);
  mismatch.writeUInt32LE(24, mismatch.length - 4);
  e = await readError(file(mismatch));
  assert.match(e.message, /trailing length 24 differs from 20/);
});

test('property: damaged capture files give records or a CaptureError, never another exception', async () => {
  const fc = (await import('fast-check')).default;
  const pcapBytes = encodePcap({ be: false, ns: true, linktype: 1 }, recs);
  const ngBytes = encodePcapng(true, [
    { shb: true },
    { idb: { linktype: 1, tsresol: 9, name: 'if0' } },
    { epb: { ifIndex: 0, ts: 123n, data: detBytes('e', 70) } },
    { spb: { data: detBytes('s', 30) } },
    { unknown: { type: 0x99, size: 8 } },
    { shb: true },
    { idb: { linktype: 276 } },
    { epb: { ifIndex: 0, ts: 1n, data: detBytes('f', 9) } },
  ]);
  await fc.assert(
    fc.asyncProperty(
      fc.boolean(),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
      fc.nat(),
      async (ng, muts, cut) => {
        const b = Buffer.from(ng ? ngBytes : pcapBytes);
        for (const [i, v] of muts) b[i % b.length] = v;
        const f = file(b.subarray(0, b.length - (cut % 40)));
        try {
          for await (const r of readCapture(f)) assert.ok(r.data.length === r.caplen);
        } catch (e) {
          assert.ok(e instanceof CaptureError, `not a CaptureError: ${String(e)}`);
        } finally {
          fs.unlinkSync(f);
        }
      },
    ),
    { numRuns: 400 },
  );
});
