// Spawns the built CLI (node bin/labelwall ...) as a user would.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabelKey } from '../../src/label/keys.js';
import { demoPackets, detBytes, wrapIp } from '../helpers/synth.js';
import { buildTcpPacket } from '../../src/wire/build.js';
import { encodePcap } from './pcap-testutil.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(root, 'bin', 'labelwall');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-cli-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const KEY_HEX = detBytes('cli test key', 32).toString('hex');
const KEY2_HEX = detBytes('cli test key 2', 32).toString('hex');

function lw(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, NO_COLOR: '1' } });
  // No key material, ever, in any output.
  for (const out of [r.stdout, r.stderr]) {
    assert.ok(!out.includes(KEY_HEX.slice(0, 16)) && !out.includes(KEY2_HEX.slice(0, 16)), `key leaked: ${out}`);
  }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function keyFile(name: string, hex: string, mode = 0o600): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, `${hex}\n`);
  fs.chmodSync(f, mode);
  return f;
}

const key1 = keyFile('k1', KEY_HEX);
const key2 = keyFile('k2', KEY2_HEX);
const demoKey = LabelKey.fromBytes(Buffer.from(KEY_HEX, 'hex'), 'k1');

/** A capture with every verdict class (labelled with key1). */
const mixed = path.join(dir, 'mixed.pcap');
const demo = demoPackets(demoKey);
fs.writeFileSync(mixed, encodePcap({ be: false, ns: false, linktype: 1 }, demo.map((p, i) => ({ tsSec: i, tsFrac: 0, data: wrapIp(1, p.ip) }))));
const clean = path.join(dir, 'clean.pcap');
fs.writeFileSync(clean, encodePcap({ be: true, ns: true, linktype: 101 }, [1, 2, 3].map((i) => ({ tsSec: i, tsFrac: i, data: buildTcpPacket({ family: i % 2 ? 4 : 6, seq: i, payload: detBytes(`c${i}`, 100 * i) }) }))));

test('pcap verify --json: one line per frame in order, then the summary; exit 1 when something is bad', () => {
  const r = lw('pcap', 'verify', mixed, '--key-file', key1, '--json');
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr, '');
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, demo.length + 1);
  demo.forEach((p, i) => {
    assert.equal(lines[i]!.frame, i + 1);
    assert.equal(lines[i]!.verdict, p.expect, p.note);
    if (p.expect !== 'valid') assert.equal(typeof lines[i]!.reason, 'string');
  });
  const summary = lines.at(-1)!.summary as Record<string, number>;
  const count = (v: string): number => demo.filter((p) => p.expect === v).length;
  assert.deepEqual(summary, { total: demo.length, valid: count('valid'), invalid: count('invalid'), unlabelled: count('unlabelled'), malformed: count('malformed'), skipped: count('skipped') });
  for (const v of ['valid', 'invalid', 'unlabelled', 'malformed', 'skipped'] as const) assert.ok(summary[v] > 0, v);
});

test('pcap verify human output: counts table and first bad frames with reasons', () => {
  const r = lw('pcap', 'verify', mixed, '-k', key1);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`valid\\s+${demo.filter((p) => p.expect === 'valid').length}\\n`));
  assert.match(r.stdout, /first bad frames:/);
  assert.match(r.stdout, /\s6\s+invalid\s+mac-mismatch/);
  assert.match(r.stdout, /malformed\s+bad-label-length/);
  assert.match(r.stdout, /malformed\s+fragment/);
  assert.match(r.stdout, new RegExp(`keys: ${demoKey.fingerprint}`));
  const limited = lw('pcap', 'verify', mixed, '-k', key1, '--max-bad', '1');
  assert.match(limited.stdout, /first bad frames \(\d+ more not shown\)/);
});

test('pcap verify: exit 0 when nothing is invalid or malformed; several keys (rollover)', () => {
  const out = path.join(dir, 'clean-labelled.pcap');
  const l = lw('pcap', 'label', clean, out, '--key-file', key2);
  assert.equal(l.code, 0, l.stderr);
  assert.match(l.stdout, /3 labelled/);
  assert.equal(lw('pcap', 'verify', clean, '-k', key1).code, 0); // unlabelled only: nothing bad
  assert.equal(lw('pcap', 'verify', out, '-k', key1).code, 1); // wrong key: invalid
  const both = lw('pcap', 'verify', out, '-k', key1, '--key-file', key2, '--json');
  assert.equal(both.code, 0);
  const key2id = LabelKey.fromBytes(Buffer.from(KEY2_HEX, 'hex')).fingerprint;
  assert.deepEqual(JSON.parse(both.stdout.split('\n')[0]!), { frame: 1, verdict: 'valid', fingerprint: key2id });
});

test('usage, file and key errors: exit 2 with one line on stderr', () => {
  const cases: Array<[string[], RegExp]> = [
    [['pcap', 'verify', mixed], /required option '--key-file <file>' not specified/],
    [['pcap', 'verify', mixed, '-k', key1, '--bogus'], /unknown option '--bogus'/],
    [['pcap', 'verify', '-k', key1], /missing required argument 'file'/],
    [['pcap', 'verify', path.join(dir, 'nope.pcap'), '-k', key1], /nope\.pcap: no such file/],
    [['pcap', 'verify', key1, '-k', key1], /not a pcap or pcapng file/],
    [['pcap', 'verify', mixed, '-k', path.join(dir, 'nokey')], /key file .*nokey: no such file/],
    [['pcap', 'frobnicate'], /unknown command 'frobnicate'/],
    [['pcap', 'label', mixed, '-k', key1], /missing required argument 'out'/],
    [['pcap', 'label', mixed, mixed, '-k', key1], /output is the input file/],
    [['pcap', 'label', mixed, path.join(dir, 'x.pcap'), '-k', key1, '--format', 'csv'], /--format: expected pcap or pcapng/],
    [['pcap', 'label', mixed, path.join(dir, 'no', 'dir', 'x.pcap'), '-k', key1], /directory does not exist/],
    [['pcap', 'verify', mixed, '-k', key1, '--max-bad', '-3'], /--max-bad/],
    [['--nope'], /unknown option '--nope'/],
  ];
  for (const [args, re] of cases) {
    const r = lw(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.ok(!/\n\s+at /.test(r.stderr), 'no stack trace');
  }
  // A damaged capture is a file error too (exit 2), reported after the frames before it.
  const cut = path.join(dir, 'cut.pcap');
  fs.writeFileSync(cut, fs.readFileSync(mixed).subarray(0, 200));
  const r = lw('pcap', 'verify', cut, '-k', key1);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cut\.pcap: frame 2 cut short.*\(at byte offset \d+\)/);
});

test('key files readable by group or others are refused, saying so', () => {
  for (const mode of [0o644, 0o640, 0o604]) {
    const f = keyFile(`open${mode.toString(8)}`, KEY_HEX, mode);
    for (const args of [['pcap', 'verify', mixed, '-k', f], ['pcap', 'label', mixed, path.join(dir, 'o.pcap'), '-k', f]]) {
      const r = lw(...args);
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`key file ${f}: refused: mode 0${mode.toString(8)} lets group or others access the key; run chmod 600`));
      assert.equal(r.stdout, '');
    }
  }
  const bad = keyFile('badhex', 'not a key at all');
  assert.match(lw('pcap', 'verify', mixed, '-k', bad).stderr, /not hexadecimal/);
  const short = keyFile('short', KEY_HEX.slice(0, 20));
  assert.match(lw('pcap', 'verify', mixed, '-k', short).stderr, /10 bytes; at least 16/);
});

test('--help on every command exits 0 and describes it', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--help'], /Usage: labelwall/],
    [['pcap', '--help'], /verify/],
    [['pcap', 'verify', '--help'], /unlabelled\s+TCP without our label/],
    [['pcap', 'label', '--help'], /Output format/],
    [['keygen', '--help'], /--out <file>/],
    [['help', 'pcap'], /label/],
  ];
  for (const [args, re] of cases) {
    const r = lw(...args);
    assert.equal(r.code, 0, args.join(' '));
    assert.match(r.stdout, re, args.join(' '));
  }
  assert.equal(lw().code, 2); // no subcommand: usage on stderr
});

test('pcap label keeps the input format: pcapng in, pcapng out', () => {
  const ngOut = path.join(dir, 'from-pcap.pcapng');
  const r = lw('pcap', 'label', clean, ngOut, '-k', key1, '--format', 'pcapng');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /pcapng, 3 frames: 3 labelled/);
  const back = path.join(dir, 'back.pcap');
  const r2 = lw('pcap', 'label', ngOut, back, '-k', key1);
  assert.match(r2.stdout, /back\.pcap: pcapng/);
  const v = lw('pcap', 'verify', back, '-k', key1, '--json');
  assert.equal(v.code, 0);
  assert.deepEqual(JSON.parse(v.stdout.trim().split('\n').at(-1)!), { summary: { total: 3, valid: 3, invalid: 0, unlabelled: 0, malformed: 0, skipped: 0 } });
});

test('output closed early (| head): quiet exit 141, no error text', () => {
  const big = path.join(dir, 'many.pcap');
  const frames = Array.from({ length: 20000 }, (_, i) => ({ tsSec: i, tsFrac: 0, data: buildTcpPacket({ family: 4, seq: i }) }));
  fs.writeFileSync(big, encodePcap({ be: false, ns: false, linktype: 101 }, frames));
  const r = spawnSync('bash', ['-c', `set -o pipefail; "${process.execPath}" "${bin}" pcap verify "${big}" -k "${key1}" --json | head -1`], { encoding: 'utf8' });
  assert.equal(r.stdout, '{"frame":1,"verdict":"unlabelled","reason":"no-label"}\n');
  assert.equal(r.stderr, '');
  assert.equal(r.status, 141);
});
