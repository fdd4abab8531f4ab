// Offline verify throughput against the bare HMAC-SHA256 rate, in the same run.
//
//   node dist/bench/verify-bench.js [--bytes N] [--runs N] [--payload N] [--keep DIR]
//   (env: LW_BENCH_BYTES, LW_BENCH_RUNS, LW_BENCH_PAYLOAD)
//
// 1. generates a capture of N bytes (default 1 GB) of TCP segments with 1,400-byte payloads
//    (Ethernet, pcap) in a temporary directory, and labels it with `labelCapture` (the code
//    behind `labelwall pcap label`);
// 2. verifies it with `verifyCapture` (the reader + per-frame verify behind `labelwall pcap
//    verify`), several times, taking the median;
// 3. computes HMAC-SHA256(key, seq || payload) per segment over the same number of segments
//    of the same sizes from memory (the bare cost verify cannot avoid), several times, median;
// 4. prints both in MB/s of MAC'd bytes (seq + payload) and the ratio, plus in-memory
//    labelPacket/verifyPacket packets per second.
import { createHmac, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compat, labelPacket, verifyPacket } from '../src/label/compat.js';
import { LabelKey } from '../src/label/keys.js';
import { labelCapture, verifyCapture } from '../src/pcap/process.js';
import { LINKTYPE_ETHERNET } from '../src/pcap/linktypes.js';
import { wrapIp } from '../test/helpers/synth.js';
import { PcapWriter } from '../src/pcap/writer.js';
import { buildTcpPacket } from '../src/wire/build.js';

function arg(name: string, env: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const raw = i >= 0 ? process.argv[i + 1] : process.env[env];
  if (raw === undefined) return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0) {
    process.stderr.write(`verify-bench: --${name}/${env}: not a positive number: ${raw}\n`);
    process.exit(2);
  }
  return v;
}

const totalBytes = arg('bytes', 'LW_BENCH_BYTES', 1e9);
const runs = Math.max(1, Math.floor(arg('runs', 'LW_BENCH_RUNS', 3)));
const payloadLen = Math.floor(arg('payload', 'LW_BENCH_PAYLOAD', 1400));
const keepIdx = process.argv.indexOf('--keep');
const keepDir = keepIdx >= 0 ? process.argv[keepIdx + 1] : undefined;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const now = (): number => Number(process.hrtime.bigint()) / 1e9;
const mb = (bytes: number, secs: number): number => bytes / secs / 1e6;
const log = (s: string): void => void process.stdout.write(`${s}\n`);

async function main(): Promise<void> {
  const dir = keepDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'lw-bench-'));
  fs.mkdirSync(dir, { recursive: true });
  const plain = path.join(dir, 'plain.pcap');
  const labelled = path.join(dir, 'labelled.pcap');
  const keyBytes = randomBytes(32);
  const key = LabelKey.fromBytes(keyBytes, 'bench');
  try {
    // 1. Generate: distinct payload bytes and sequence numbers per segment, from a pool.
    const pool = randomBytes(1 << 20);
    const template = buildTcpPacket({ family: 4, seq: 0, ack: 1, flags: 0x18, payload: Buffer.alloc(payloadLen) });
    const frameLen = 14 + template.length;
    const perRecordLabelled = 16 + frameLen + 40;
    const packets = Math.max(1, Math.floor(totalBytes / perRecordLabelled));
    let t = now();
    const w = await PcapWriter.create(plain, { linktype: LINKTYPE_ETHERNET });
    const frame = wrapIp(LINKTYPE_ETHERNET, template);
    for (let i = 0; i < packets; i++) {
      const f = Buffer.from(frame);
      f.writeUInt32BE((i * payloadLen) >>> 0, 14 + 24);
      const off = (i * 4099) % (pool.length - payloadLen);
      pool.copy(f, 14 + 40, off, off + payloadLen);
      await w.write(f, { tsSec: 1_700_000_000 + Math.floor(i / 100000), tsFrac: i % 100000, tsUnitsPerSec: 1e6 });
    }
    await w.close();
    const genSecs = now() - t;
    log(
      `generated ${packets} segments (${payloadLen}-byte payloads), ${(fs.statSync(plain).size / 1e6).toFixed(0)} MB in ${genSecs.toFixed(1)} s`,
    );

    // Labelling the whole file (pcap label path).
    t = now();
    const lc = await labelCapture(compat, plain, labelled, key);
    const labelSecs = now() - t;
    fs.unlinkSync(plain);
    const fileBytes = fs.statSync(labelled).size;
    const macBytes = lc.labelled * (4 + payloadLen);
    log(
      `pcap label: ${lc.labelled} segments labelled in ${labelSecs.toFixed(2)} s = ${(lc.labelled / labelSecs / 1e3).toFixed(0)} k segments/s, ${mb(fileBytes, labelSecs).toFixed(0)} MB/s of output file`,
    );

    // 2. Verify (the pcap verify path), median of runs.
    const verifySecs: number[] = [];
    for (let r = 0; r < runs; r++) {
      t = now();
      const c = await verifyCapture(compat, labelled, [key]);
      verifySecs.push(now() - t);
      if (c.valid !== lc.labelled) throw new Error(`verify found ${c.valid} valid of ${lc.labelled}`);
    }

    // 3. Bare HMAC over the same number of segments of the same sizes, from memory: the same
    //    engine labelwall uses (LabelKey.mac: libcrypto's HMAC_CTX, or node:crypto as fallback),
    //    and node:crypto's createHmac for reference. The ratio is against the engine's rate.
    const sample = 1024;
    const seqs = Array.from({ length: sample }, (_, i) => pool.subarray(i * 4, i * 4 + 4));
    const payloads = Array.from({ length: sample }, (_, i) => {
      const off = (i * 4099) % (pool.length - payloadLen);
      return pool.subarray(off, off + payloadLen);
    });
    const hmacSecs: number[] = [];
    const nodeHmacSecs: number[] = [];
    for (let r = 0; r < runs; r++) {
      t = now();
      for (let i = 0; i < lc.labelled; i++) key.mac(seqs[i & (sample - 1)]!, payloads[i & (sample - 1)]!);
      hmacSecs.push(now() - t);
      t = now();
      for (let i = 0; i < lc.labelled; i++) {
        createHmac('sha256', keyBytes)
          .update(seqs[i & (sample - 1)]!)
          .update(payloads[i & (sample - 1)]!)
          .digest();
      }
      nodeHmacSecs.push(now() - t);
    }

    const v = median(verifySecs);
    const h = median(hmacSecs);
    const hn = median(nodeHmacSecs);
    log('');
    log(`runs: ${runs} (median); MAC'd bytes per segment: ${4 + payloadLen}; capture file ${(fileBytes / 1e6).toFixed(0)} MB`);
    log(
      `pcap verify path : ${mb(macBytes, v).toFixed(0).padStart(6)} MB/s MAC'd bytes (${mb(fileBytes, v).toFixed(0)} MB/s of file, ${(lc.labelled / v / 1e3).toFixed(0)} k segments/s)  runs: ${verifySecs.map((s) => s.toFixed(2)).join(' ')} s`,
    );
    log(
      `bare HMAC-SHA256 : ${mb(macBytes, h).toFixed(0).padStart(6)} MB/s (${(lc.labelled / h / 1e3).toFixed(0)} k segments/s, ${key.macBackend} engine)  runs: ${hmacSecs.map((s) => s.toFixed(2)).join(' ')} s`,
    );
    log(`node createHmac  : ${mb(macBytes, hn).toFixed(0).padStart(6)} MB/s (${(lc.labelled / hn / 1e3).toFixed(0)} k segments/s)`);
    log(`ratio verify/HMAC: ${((h / v) * 100).toFixed(1)} %`);

    // 4. In-memory per-packet rates of the functions the datapath calls.
    const ip = buildTcpPacket({
      family: 4,
      seq: 1,
      flags: 0x18,
      options: Uint8Array.of(2, 4, 5, 0xb4, 1, 1, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7),
      payload: pool.subarray(0, payloadLen),
    });
    const labelledIp = labelPacket(ip, key);
    if (!labelledIp.ok) throw new Error('label failed');
    const out = Buffer.alloc(70000);
    const n = 200_000;
    const rate = (fn: () => void): number => {
      for (let i = 0; i < 20_000; i++) fn();
      const s = now();
      for (let i = 0; i < n; i++) fn();
      return n / (now() - s);
    };
    const lp = median([0, 1, 2].map(() => rate(() => void labelPacket(ip, key, out))));
    const vp = median([0, 1, 2].map(() => rate(() => void verifyPacket(labelledIp.packet, [key]))));
    const hp = median([0, 1, 2].map(() => rate(() => void key.mac(ip.subarray(24, 28), ip.subarray(ip.length - payloadLen)))));
    log(
      `in memory, ${payloadLen}-byte payload: labelPacket ${(lp / 1e3).toFixed(0)} k pkt/s, verifyPacket ${(vp / 1e3).toFixed(0)} k pkt/s, bare HMAC ${(hp / 1e3).toFixed(0)} k pkt/s`,
    );
  } finally {
    if (!keepDir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
