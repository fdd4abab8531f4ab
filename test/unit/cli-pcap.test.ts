// Spawns the built CLI (node bin/labelwall ...) as a user would.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabelKey } from '../../src/label/keys.js';
import { parseNatList } from '../../src/cli/pcap.js';
import { CliError } from '../../src/cli/errors.js';
import { natBits } from '../../src/config/normalize.js';
import { demoPackets, detBytes, wrapIp } from '../helpers/synth.js';
import { labelWith } from '../../src/label/profile.js';
import { v1 } from '../../src/label/v1.js';
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
fs.writeFileSync(
  mixed,
  encodePcap(
    { be: false, ns: false, linktype: 1 },
    demo.map((p, i) => ({ tsSec: i, tsFrac: 0, data: wrapIp(1, p.ip) })),
  ),
);
const clean = path.join(dir, 'clean.pcap');
fs.writeFileSync(
  clean,
  encodePcap(
    { be: true, ns: true, linktype: 101 },
    [1, 2, 3].map((i) => ({
      tsSec: i,
      tsFrac: i,
      data: buildTcpPacket({ family: i % 2 ? 4 : 6, seq: i, payload: detBytes(`c${i}`, 100 * i) }),
    })),
  ),
);

test('pcap verify --json: one line per frame in order, then the summary; exit 1 when something is bad', () => {
  // The demo capture holds compat labels: judged by --profile compat, and alike by the default (any).
  for (const profile of [['--profile', 'compat'], []]) {
    const r = lw('pcap', 'verify', mixed, '--key-file', key1, '--json', ...profile);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, '');
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, demo.length + 1);
    demo.forEach((p, i) => {
      assert.equal(lines[i]!.frame, i + 1);
      assert.equal(lines[i]!.verdict, p.expect, p.note);
      if (p.expect !== 'valid') assert.equal(typeof lines[i]!.reason, 'string');
      if (p.expect === 'valid' || p.expect === 'invalid') assert.equal(lines[i]!.profile, 'compat', p.note);
    });
  }
  const r = lw('pcap', 'verify', mixed, '--key-file', key1, '--json', '--profile', 'compat');
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const summary = lines.at(-1)!.summary as Record<string, number>;
  const count = (v: string): number => demo.filter((p) => p.expect === v).length;
  assert.deepEqual(summary, {
    total: demo.length,
    valid: count('valid'),
    invalid: count('invalid'),
    unlabelled: count('unlabelled'),
    malformed: count('malformed'),
    skipped: count('skipped'),
  });
  for (const v of ['valid', 'invalid', 'unlabelled', 'malformed', 'skipped'] as const) assert.ok(summary[v] > 0, v);
});

test('pcap verify human output: counts table and first bad frames with reasons', () => {
  const r = lw('pcap', 'verify', mixed, '-k', key1, '--profile', 'any');
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`valid\\s+${demo.filter((p) => p.expect === 'valid').length}\\n`));
  assert.match(r.stdout, /first bad frames:/);
  assert.match(r.stdout, /\s6\s+invalid\s+mac-mismatch/);
  assert.match(r.stdout, /malformed\s+bad-label-length/);
  assert.match(r.stdout, /malformed\s+fragment/);
  assert.match(r.stdout, new RegExp(`profile any; keys: ${demoKey.fingerprint} \\(id 0\\)`));
  assert.match(r.stdout, /labels by profile: compat \d+/);
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
  // pcap label's default is v1: the line names its key id, tag, NAT flags and form.
  assert.deepEqual(JSON.parse(both.stdout.split('\n')[0]!), {
    frame: 1,
    verdict: 'valid',
    profile: 'v1',
    fingerprint: key2id,
    keyId: 0,
    tag: 0,
    nat: 0,
    compact: false,
  });
});

test('usage, file and key errors: exit 2 with one line on stderr', () => {
  const cases: Array<[string[], RegExp]> = [
    [['pcap', 'verify', mixed], /required option '--key-file <\[id=\]file>' not specified/],
    [['pcap', 'label', mixed, path.join(dir, 'x.pcap')], /required option '--key-file <\[id=\]file>' not specified/],
    [['pcap', 'verify', mixed, '-k', key1, '--profile', 'v2'], /--profile: expected any, v1, compat, got 'v2'/],
    [['pcap', 'label', mixed, path.join(dir, 'x.pcap'), '-k', key1, '--profile', 'any'], /--profile: expected v1, compat, got 'any'/],
    [['pcap', 'label', mixed, path.join(dir, 'x.pcap'), '-k', key1, '--tag', '70000'], /--tag: expected an app tag 0-65535, got '70000'/],
    [['pcap', 'label', mixed, path.join(dir, 'x.pcap'), '-k', key1, '--tag', 'web'], /--tag: expected an app tag/],
    [
      ['pcap', 'label', mixed, path.join(dir, 'x.pcap'), '-k', key1, '--nat', 'source,sideways'],
      /--nat: expected a list of source, destination, ports \(or none\), got 'source,sideways'/,
    ],
    [['pcap', 'label', mixed, path.join(dir, 'x.pcap'), '-k', key1, '--profile', 'compat', '--tag', '5'], /--tag and --nat are v1's/],
    [
      ['pcap', 'verify', mixed, '-k', key1, '--profile', 'compat', '--allow-nat', 'source'],
      /^labelwall: --allow-nat is v1's; the compat label has no NAT flags/,
    ],
    [
      ['pcap', 'label', mixed, path.join(dir, 'x.pcap'), '-k', key1, '-k', key2],
      /^labelwall: pcap label labels with one key: give --key-file once\n$/,
    ],
    [
      ['pcap', 'label', mixed, path.join(dir, 'x.pcap'), '-k', key1, '--key-file', `5=${key1}`],
      /labels with one key: give --key-file once/,
    ],
    [['pcap', 'verify', mixed, '-k', key1, '--allow-nat', 'all'], /--allow-nat: expected a list/],
    [
      ['pcap', 'label', mixed, path.join(dir, 'x.pcap'), '-k', key1, '--nat', 'ports'],
      /^labelwall: --nat: ports needs source or destination too \(the P flag only says which ports of a translated address are left out\)\n$/,
    ],
    [['pcap', 'verify', mixed, '-k', key1, '--allow-nat', 'ports'], /^labelwall: --allow-nat: ports needs source or destination too/],
    [['pcap', 'verify', mixed, '-k', `9=${key1}`], /--key-file 9=.*: key id 9 is not 0-7 \(a file of that name: \.\/9=/],
    [['pcap', 'verify', mixed, '-k', '3='], /--key-file 3=: no file after '3='/],
    [['pcap', 'verify', mixed, '-k', `5=${path.join(dir, 'nokey')}`], /key file .*nokey: no such file/],
    [['pcap', 'verify', mixed, '-k', key1, '--bogus'], /unknown option '--bogus'/],
    [['pcap', 'verify', '-k', key1], /missing required argument 'file'/],
    [['pcap', 'verify', path.join(dir, 'nope.pcap'), '-k', key1], /nope\.pcap: no such file/],
    [['pcap', 'verify', key1, '-k', key1], /not a pcap or pcapng file/],
    [['pcap', 'verify', mixed, '-k', path.join(dir, 'nokey')], /key file .*nokey: no such file/],
    [['pcap', 'frobnicate'], /unknown command 'frobnicate'/],
    // An unknown command is an error whatever flags follow (--help and --version were answered first).
    [['nosuch', '--help'], /^labelwall: unknown command 'nosuch'\n$/],
    [['nosuch', '-h', '--json'], /^labelwall: unknown command 'nosuch'\n$/],
    [['nosuch', '-V'], /^labelwall: unknown command 'nosuch'\n$/],
    [['--help', 'nosuch'], /^labelwall: unknown command 'nosuch'\n$/],
    [['pcap', 'nosuch', '--help'], /^labelwall: unknown command 'nosuch'\n$/],
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
  // A misspelt command with --help: the error and commander's suggestion, not the root help.
  const typo = lw('statsu', '--help');
  assert.equal(typo.code, 2);
  assert.equal(typo.stdout, '');
  assert.equal(typo.stderr, "labelwall: unknown command 'statsu'\n(Did you mean status?)\n");
  // A damaged capture is a file error too (exit 2), reported after the frames before it.
  const bad = path.join(dir, 'bad-length.pcap');
  const bytes = Buffer.from(fs.readFileSync(mixed));
  const second = 24 + 16 + bytes.readUInt32LE(24 + 8); // the second record's header
  bytes.writeUInt32LE(0x7fffffff, second + 8);
  fs.writeFileSync(bad, bytes);
  const r = lw('pcap', 'verify', bad, '-k', key1, '--json');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad-length\.pcap: record of frame 2 claims 2147483647 captured bytes .*\(at byte offset \d+\)/);
  assert.deepEqual(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { frame: number }).frame),
    [1],
    'the frame before the damage is printed',
  );
});

test('pcap verify and label: a capture cut inside its last record (a killed tcpdump) gives every complete frame and a warning', () => {
  const whole = fs.readFileSync(mixed);
  const cut = path.join(dir, 'cut.pcap');
  fs.writeFileSync(cut, whole.subarray(0, whole.length - 10));
  const full = JSON.parse(lw('pcap', 'verify', mixed, '-k', key1, '--json').stdout.trim().split('\n').pop()!).summary;
  const r = lw('pcap', 'verify', cut, '-k', key1, '--json');
  assert.equal(r.code, 1, 'exit as for the frames read: the demo capture has invalid frames');
  const lines = r.stdout.trim().split('\n');
  const summary = JSON.parse(lines.pop()!).summary as Record<string, number | string>;
  assert.equal(lines.length, full.total - 1, 'every complete frame has its line');
  assert.equal(summary.total, full.total - 1);
  assert.match(String(summary.truncated), new RegExp(`frame ${full.total} cut short`));
  assert.match(
    r.stderr,
    new RegExp(
      `^labelwall: warning: .*cut\\.pcap: frame ${full.total} cut short: .*; the ${full.total - 1} complete frames before it are counted\n$`,
    ),
  );
  const text = lw('pcap', 'verify', cut, '-k', key1);
  assert.match(text.stdout, new RegExp(`cut\\.pcap: ${full.total - 1} frames`));
  // Control: the whole file has no warning and no `truncated`.
  const w = lw('pcap', 'verify', mixed, '-k', key1, '--json');
  assert.equal(w.stderr, '');
  assert.equal(full.truncated, undefined);
  // pcap label writes the complete frames, and the output reads back whole.
  const out = path.join(dir, 'cut-labelled.pcap');
  const l = lw('pcap', 'label', cut, out, '-k', key1);
  assert.equal(l.code, 0, l.stderr);
  assert.match(
    l.stderr,
    new RegExp(`warning: .*frame ${full.total} cut short: .*; the ${full.total - 1} complete frames before it are written`),
  );
  const back = lw('pcap', 'verify', out, '-k', key1, '--json');
  assert.equal(back.stderr, '');
  assert.equal(JSON.parse(back.stdout.trim().split('\n').pop()!).summary.total, full.total - 1);
});

test('pcap label: an output that cannot be created or written names the file and the reason, and leaves nothing', () => {
  const full = lw('pcap', 'label', mixed, '/dev/full', '-k', key1);
  assert.equal(full.code, 2);
  assert.equal(full.stderr, 'labelwall: /dev/full: cannot write output: ENOSPC: no space left on device\n');
  // A failed output is removed only when it is a regular file: the device stays (run as root, an
  // unlink would have deleted /dev/full).
  assert.ok(fs.statSync('/dev/full').isCharacterDevice(), '/dev/full is still the device');
  // (That a failed regular output is removed is tested in pcap-label.test.ts.)
  const d = fs.mkdtempSync(path.join(dir, 'outdir-'));
  const isDir = lw('pcap', 'label', mixed, d, '-k', key1);
  assert.equal(isDir.code, 2);
  assert.equal(isDir.stderr, `labelwall: ${d}: cannot create output: EISDIR: illegal operation on a directory\n`);
});

test('key files readable by group or others are refused, saying so', () => {
  for (const mode of [0o644, 0o640, 0o604]) {
    const f = keyFile(`open${mode.toString(8)}`, KEY_HEX, mode);
    for (const args of [
      ['pcap', 'verify', mixed, '-k', f],
      ['pcap', 'label', mixed, path.join(dir, 'o.pcap'), '-k', f],
    ]) {
      const r = lw(...args);
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        new RegExp(`key file ${f}: refused: mode 0${mode.toString(8)} lets group or others access the key; run chmod 600`),
      );
      assert.equal(r.stdout, '');
    }
  }
  const bad = keyFile('badhex', 'not a key at all');
  assert.match(lw('pcap', 'verify', mixed, '-k', bad).stderr, /not hexadecimal/);
  const short = keyFile('short', KEY_HEX.slice(0, 20));
  assert.match(lw('pcap', 'verify', mixed, '-k', short).stderr, /10 bytes; at least 16/);
});

test('a key given where its key file belongs is never echoed (pcap, agent, verifier, config keys, check-config)', () => {
  const said = 'key file: the value given looks like a key, not a file name (give the path of a key file)';
  const cfg = path.join(dir, 'key-as-file.yaml');
  fs.writeFileSync(cfg, `keys:\n  main: ${KEY_HEX}\nagent:\n  key: main\n`);
  const sock = path.join(dir, 'never.sock');
  const cases: Array<[string[], string]> = [
    [['pcap', 'verify', mixed, '-k', KEY_HEX], `labelwall: ${said}\n`],
    [['pcap', 'verify', mixed, '-k', `0x${KEY_HEX}`], `labelwall: ${said}\n`],
    [['pcap', 'verify', mixed, '-k', `5=${KEY_HEX}`], `labelwall: ${said}\n`],
    [['pcap', 'verify', mixed, '-k', `9=${KEY_HEX}`], 'labelwall: --key-file 9=…: key id 9 is not 0-7 (a file of that name: ./9=…)\n'],
    [['pcap', 'label', mixed, path.join(dir, 'x.pcap'), '-k', KEY_HEX], `labelwall: ${said}\n`],
    [['verifier', '-k', KEY_HEX, '--control-socket', sock], `labelwall: ${said}\n`],
    [
      ['verifier', '-k', `9=${KEY_HEX}`, '--control-socket', sock],
      'labelwall: --key-file 9=…: key id 9 is not 0-7 (a file of that name: ./9=…)\n',
    ],
    [['agent', '-k', KEY_HEX, '--control-socket', sock], `labelwall: ${said}\n`],
    [['agent', '--config', cfg, '--control-socket', sock], `labelwall: ${said}\n`],
    [['verifier', '--config', cfg, '--control-socket', sock], `labelwall: ${said}\n`],
    [['check-config', cfg], `labelwall: ${cfg}:2:9: keys.main: ${said}\n`],
  ];
  for (const [args, want] of cases) {
    const r = lw(...args); // lw fails on any output that holds the key
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr, want, args.join(' '));
  }
  const j = lw('check-config', cfg, '--json');
  assert.equal(j.code, 2);
  assert.equal((JSON.parse(j.stdout) as { problems: Array<{ message: string }> }).problems[0]!.message, said);
  // Where a key's name belongs (agent.key, a rule's keys) too.
  const asName = path.join(dir, 'key-as-name.yaml');
  fs.writeFileSync(asName, `keys:\n  main: ${cfg}\nagent:\n  key: ${KEY_HEX}\nverifier:\n  rules:\n    - keys: [${KEY_HEX}]\n`);
  const n = lw('check-config', asName);
  assert.equal(n.code, 2);
  const named =
    'the value given looks like a key, not a key name: put the key in a file, name it under keys (NAME: FILE) and give NAME here';
  assert.equal(n.stderr, `labelwall: ${asName}:4:8: agent.key: ${named}\nlabelwall: ${asName}:7:14: verifier.rules[0].keys[0]: ${named}\n`);
});

test('--help on every command exits 0 and describes it', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--help'], /Usage: labelwall/],
    [['pcap', '--help'], /verify/],
    [['pcap', 'verify', '--help'], /unlabelled\s+TCP without our label/],
    [['pcap', 'label', '--help'], /Output format/],
    [['pcap', 'label', '--help'], /--profile <name>[\s\S]*--tag <n>[\s\S]*--nat <list>[\s\S]*--key-file ID=FILE/],
    [['pcap', 'verify', '--help'], /--profile <name>[\s\S]*--allow-nat <list>[\s\S]*any \(the default\)/],
    [['keygen', '--help'], /--out <file>/],
    [['help', 'pcap'], /label/],
    [['status', '--help'], /Usage: labelwall status/],
    [['pcap', 'label', '-h'], /Usage: labelwall pcap label/],
    [['-V'], /^\d+\.\d+\.\d+/],
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
  assert.deepEqual(JSON.parse(v.stdout.trim().split('\n').at(-1)!), {
    summary: { total: 3, valid: 3, invalid: 0, unlabelled: 0, malformed: 0, skipped: 0 },
  });
});

test('output closed early (| head): quiet exit 141, no error text', () => {
  const big = path.join(dir, 'many.pcap');
  const frames = Array.from({ length: 20000 }, (_, i) => ({ tsSec: i, tsFrac: 0, data: buildTcpPacket({ family: 4, seq: i }) }));
  fs.writeFileSync(big, encodePcap({ be: false, ns: false, linktype: 101 }, frames));
  const r = spawnSync(
    'bash',
    ['-c', `set -o pipefail; "${process.execPath}" "${bin}" pcap verify "${big}" -k "${key1}" --json | head -1`],
    { encoding: 'utf8' },
  );
  assert.equal(r.stdout, '{"frame":1,"verdict":"unlabelled","reason":"no-label"}\n');
  assert.equal(r.stderr, '');
  assert.equal(r.status, 141);
});

test('output that cannot be written (> /dev/full): one line, exit 74, no stack trace', () => {
  const cfg = path.join(dir, 'empty.yaml');
  fs.writeFileSync(cfg, 'keys: {}\n');
  const full = fs.openSync('/dev/full', 'w');
  try {
    for (const args of [
      ['pcap', 'verify', mixed, '-k', key1],
      ['pcap', 'verify', mixed, '-k', key1, '--json'],
      ['pcap', 'label', clean, path.join(dir, 'full.pcap'), '-k', key1],
      ['check-config', cfg],
      ['check-config', cfg, '--json'],
      ['version', '--json'],
      ['--help'],
    ]) {
      const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir, stdio: ['ignore', full, 'pipe'] });
      assert.equal(r.stderr, 'labelwall: cannot write output: ENOSPC: no space left on device\n', args.join(' '));
      assert.equal(r.status, 74, args.join(' '));
    }
  } finally {
    fs.closeSync(full);
  }
});

test('pcap label --profile v1 with a key id, --tag and --nat; pcap verify shows them and refuses NAT modes unless --allow-nat', () => {
  const v1out = path.join(dir, 'v1-nat.pcap');
  const l = lw('pcap', 'label', clean, v1out, '-k', `5=${key2}`, '--tag', '300', '--nat', 'source,ports');
  assert.equal(l.code, 0, l.stderr);
  const fp2 = LabelKey.fromBytes(Buffer.from(KEY2_HEX, 'hex')).fingerprint;
  assert.match(
    l.stdout,
    new RegExp(`3 labelled \\(v1, key ${fp2} id 5, tag 300, nat source,ports; 0 compact, 0 SACK-trimmed, 0 with options removed\\)`),
  );
  const first = (r: { stdout: string }): Record<string, unknown> => JSON.parse(r.stdout.split('\n')[0]!) as Record<string, unknown>;
  const denied = lw('pcap', 'verify', v1out, '-k', `5=${key2}`, '--json');
  assert.equal(denied.code, 1);
  assert.deepEqual(first(denied), {
    frame: 1,
    verdict: 'invalid',
    reason: 'nat-mode-denied',
    profile: 'v1',
    keyId: 5,
    tag: 300,
    nat: 5,
    compact: false,
  });
  assert.equal(lw('pcap', 'verify', v1out, '-k', `5=${key2}`, '--allow-nat', 'source').code, 1); // P not allowed
  const ok = lw('pcap', 'verify', v1out, '-k', key1, '-k', `5=${key2}`, '--allow-nat', 'source,ports', '--json');
  assert.equal(ok.code, 0, ok.stdout);
  assert.deepEqual(first(ok), { frame: 1, verdict: 'valid', profile: 'v1', fingerprint: fp2, keyId: 5, tag: 300, nat: 5, compact: false });
  // The key id is part of the key: the same file as id 0 is not the key the label names.
  assert.equal(first(lw('pcap', 'verify', v1out, '-k', key2, '--allow-nat', 'source,ports', '--json')).reason, 'unknown-key');
  const human = lw('pcap', 'verify', v1out, '-k', `5=${key2}`, '--allow-nat', 'source,ports', '--profile', 'v1');
  assert.equal(human.code, 0);
  assert.match(human.stdout, new RegExp(`profile v1; keys: ${fp2} \\(id 5\\)`));
  assert.match(human.stdout, /labels by profile: v1 3/);
  // Profiles judge only their own labels; any judges both.
  const cout = path.join(dir, 'compat.pcap');
  const lc = lw('pcap', 'label', clean, cout, '-k', key1, '--profile', 'compat');
  assert.match(lc.stdout, /3 labelled \(compat, key [0-9a-f]{8}\)/);
  assert.deepEqual(first(lw('pcap', 'verify', cout, '-k', key1, '--profile', 'v1', '--json')), {
    frame: 1,
    verdict: 'invalid',
    reason: 'other-profile',
    profile: 'v1',
  });
  assert.equal(first(lw('pcap', 'verify', cout, '-k', key1, '--json')).profile, 'compat');
  assert.equal(first(lw('pcap', 'verify', v1out, '-k', key1, '--profile', 'compat', '--json')).reason, 'bad-label-length');
});

test("--nat / --allow-nat take the config's names (source, destination, ports, or none), src and dst for one release; ports alone refused", () => {
  for (const flag of ['--nat', '--allow-nat']) {
    assert.equal(parseNatList(flag, 'none'), 0);
    assert.equal(parseNatList(flag, 'source'), natBits(['source']));
    assert.equal(parseNatList(flag, 'destination,ports'), natBits(['destination', 'ports']));
    assert.equal(parseNatList(flag, 'source, destination, ports'), natBits(['source', 'destination', 'ports']));
    assert.equal(parseNatList(flag, 'ports,source'), natBits(['source', 'ports']));
    // The 0.1 spellings, still read (not documented).
    assert.equal(parseNatList(flag, 'src,ports'), natBits(['source', 'ports']));
    assert.equal(parseNatList(flag, 'dst'), natBits(['destination']));
    const refused = (v: string, re: RegExp): void => {
      assert.throws(
        () => parseNatList(flag, v),
        (e: unknown) => e instanceof CliError && re.test(e.message),
        `${flag} ${v}`,
      );
    };
    refused('ports', new RegExp(`^${flag}: ports needs source or destination too`));
    refused('ports,ports', /ports needs source or destination too/);
    refused('sources', new RegExp(`^${flag}: expected a list of source, destination, ports \\(or none\\), got 'sources'$`));
    refused('S,D', /expected a list of source, destination, ports/);
    refused('', /expected a list/);
    refused('none,source', /expected a list/);
    refused('constructor', /expected a list/);
  }
});

test('pcap verify judges each v1 frame at its capture timestamp (epoch window 2 before, 1 after)', () => {
  const T = 1_764_633_607_000; // epoch 110289600 began 7 s earlier
  const k = LabelKey.fromBytes(Buffer.from(KEY_HEX, 'hex'), 'k1');
  const shifts = [0, 30, 60, -20, -40]; // capture time minus label time, in seconds
  const frames = shifts.map((d, i) => {
    const r = labelWith(v1, buildTcpPacket({ family: 4, seq: i, payload: detBytes(`t${i}`, 50) }), k, undefined, { timeMs: T });
    assert.ok(r.ok);
    return { tsSec: T / 1000 + d, tsFrac: 0, data: r.packet };
  });
  const f = path.join(dir, 'times.pcap');
  fs.writeFileSync(f, encodePcap({ be: false, ns: false, linktype: 101 }, frames));
  const r = lw('pcap', 'verify', f, '-k', key1, '--json');
  const got = r.stdout
    .trim()
    .split('\n')
    .slice(0, -1)
    .map((l) => (JSON.parse(l) as { verdict: string; reason?: string }).reason ?? 'valid');
  assert.deepEqual(got, ['valid', 'valid', 'stale-epoch', 'valid', 'stale-epoch']);
});

test('pcap verify --epoch-before / --epoch-after: the v1 epoch window, as verifier.epoch_window', () => {
  // A v1 label made at T, captured 3 epochs (48 s) later or 2 epochs earlier.
  const T = 1_764_633_607_000;
  const r = labelWith(v1, buildTcpPacket({ family: 4, payload: Buffer.from('late') }), demoKey, undefined, { timeMs: T });
  assert.ok(r.ok);
  const capture = (name: string, shiftEpochs: number): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(
      f,
      encodePcap({ be: false, ns: false, linktype: 101 }, [{ tsSec: T / 1000 + shiftEpochs * 16, tsFrac: 0, data: r.packet }]),
    );
    return f;
  };
  const late = capture('late.pcap', 3);
  const early = capture('early.pcap', -2);
  const verdict = (f: string, ...flags: string[]): string => {
    const out = lw('pcap', 'verify', f, '-k', key1, '--profile', 'v1', '--json', ...flags);
    return (JSON.parse(out.stdout.split('\n')[0]!) as { verdict: string; reason?: string }).reason ?? 'valid';
  };
  assert.equal(verdict(late), 'stale-epoch', 'default: 2 epochs before');
  assert.equal(verdict(late, '--epoch-before', '3'), 'valid');
  assert.equal(verdict(early), 'stale-epoch', 'default: 1 epoch after');
  assert.equal(verdict(early, '--epoch-after', '2'), 'valid');
  assert.equal(verdict(late, '--epoch-before', '3', '--epoch-after', '0'), 'valid');
  const bad = lw('pcap', 'verify', late, '-k', key1, '--epoch-before', '17');
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, 'labelwall: --epoch-before: must be an integer from 0 to 16, got 17\n');
});
