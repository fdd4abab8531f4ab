// Hostile inputs, the pure parts (issue 7, items 8, 9 and 11): files that are not regular
// files or are huge, YAML alias bombs, key file owners, keygen over a device node, cmdline
// patterns that would backtrack, the egress decision log limiter, and the log sink on a
// destination that fails (/dev/full answers every write with ENOSPC).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KeyFileError, generateKeyFile, loadKeyFile, MAX_KEY_FILE_BYTES } from '../../src/label/keys.js';
import { loadConfig, parseConfig, MAX_CONFIG_BYTES } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/messages.js';
import { cmdlinePatternError, compileCmdline, MAX_CMDLINE_MATCH } from '../../src/util/match.js';
import { capArgv } from '../../src/policy/egress.js';
import { DecisionLogLimiter } from '../../src/policy/decision-log.js';
import { LogSink } from '../../src/util/log.js';
import { readRegularFile } from '../../src/util/files.js';

const HEX = 'ab'.repeat(32);
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'lw-hard-'));

function keyError(fn: () => unknown, code: string, re: RegExp): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof KeyFileError && e.code === code && re.test(e.message) && !e.message.includes(HEX.slice(0, 12)),
  );
}

test('readRegularFile: a FIFO and a device are refused without blocking, size limits hold', () => {
  const d = tmp();
  const fifo = path.join(d, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const t0 = Date.now();
  assert.throws(() => readRegularFile(fifo, 100), /not a regular file \(a FIFO\)/);
  assert.throws(() => readRegularFile('/dev/zero', 100), /not a regular file \(a character device\)/);
  assert.ok(Date.now() - t0 < 1000, 'no blocking open or read');
  fs.writeFileSync(path.join(d, 'big'), Buffer.alloc(101));
  assert.throws(() => readRegularFile(path.join(d, 'big'), 100), /too large: 101 bytes, at most 100 bytes/);
  fs.writeFileSync(path.join(d, 'ok'), 'x'.repeat(100));
  assert.equal(readRegularFile(path.join(d, 'ok'), 100).length, 100);
  fs.rmSync(d, { recursive: true });
});

test('loadKeyFile: FIFO, device, 600 MB-style oversize and foreign owner are refused with the reason', () => {
  const d = tmp();
  const fifo = path.join(d, 'fifo.key');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  keyError(() => loadKeyFile(fifo), 'not-a-file', /fifo\.key: not a regular file \(a FIFO\)/);
  keyError(() => loadKeyFile('/dev/zero'), 'not-a-file', /not a regular file \(a character device\)/);
  const big = path.join(d, 'big.key');
  fs.writeFileSync(big, '', { mode: 0o600 });
  fs.truncateSync(big, 600 * 1024 * 1024); // sparse: the size is what counts
  keyError(() => loadKeyFile(big), 'too-large', new RegExp(`too large: ${600 * 1024 * 1024} bytes, at most 4 KiB`));
  const okBig = path.join(d, 'padded.key');
  fs.writeFileSync(okBig, HEX + ' '.repeat(MAX_KEY_FILE_BYTES - HEX.length), { mode: 0o600 });
  assert.equal(loadKeyFile(okBig).length, 32, 'exactly the limit is accepted');
  if (process.geteuid?.() === 0) {
    const other = path.join(d, 'other.key');
    fs.writeFileSync(other, HEX, { mode: 0o600 });
    fs.chownSync(other, 65534, 65534);
    keyError(
      () => loadKeyFile(other),
      'owner',
      /other\.key: refused: owned by uid 65534, which could replace the key; it must belong to root: run chown root /,
    );
    fs.chownSync(other, 0, 65534);
    assert.equal(loadKeyFile(other).length, 32, 'owned by root (group irrelevant at mode 0600)');
  }
  fs.rmSync(d, { recursive: true });
});

test('generateKeyFile: refuses to replace a device node, a FIFO or a symbolic link, even with force', () => {
  const d = tmp();
  const before = fs.statSync('/dev/full');
  keyError(
    () => generateKeyFile('/dev/full', { force: true }),
    'not-a-file',
    /\/dev\/full: exists and is a character device; refusing to replace it/,
  );
  const after = fs.statSync('/dev/full');
  assert.ok(after.isCharacterDevice() && after.rdev === before.rdev && after.ino === before.ino, '/dev/full is untouched');
  const fifo = path.join(d, 'fifo');
  execFileSync('mkfifo', [fifo]);
  keyError(() => generateKeyFile(fifo, { force: true }), 'not-a-file', /a FIFO; refusing/);
  const target = path.join(d, 'target');
  fs.writeFileSync(target, 'keep');
  fs.symlinkSync(target, path.join(d, 'link'));
  keyError(() => generateKeyFile(path.join(d, 'link'), { force: true }), 'not-a-file', /a symbolic link; refusing/);
  assert.equal(fs.readFileSync(target, 'utf8'), 'keep');
  // A regular file and a new path still work.
  fs.writeFileSync(path.join(d, 'old.key'), HEX, { mode: 0o600 });
  generateKeyFile(path.join(d, 'old.key'), { force: true });
  generateKeyFile(path.join(d, 'new.key'));
  assert.equal(loadKeyFile(path.join(d, 'new.key')).length, 32);
  fs.rmSync(d, { recursive: true });
});

test('loadConfig: /dev/zero, a FIFO and a file over 1 MiB are ConfigErrors at 1:1', () => {
  const d = tmp();
  const fifo = path.join(d, 'c.yaml');
  execFileSync('mkfifo', [fifo]);
  const one = (file: string, re: RegExp): void =>
    assert.throws(
      () => loadConfig(file),
      (e: unknown) => e instanceof ConfigError && e.problems.length === 1 && e.problems[0]!.line === 1 && re.test(e.message),
    );
  one('/dev/zero', /^\/dev\/zero:1:1: \(document\): cannot read config file: not a regular file \(a character device\)$/);
  one(fifo, /c\.yaml:1:1: \(document\): cannot read config file: not a regular file \(a FIFO\)$/);
  const big = path.join(d, 'big.yaml');
  fs.writeFileSync(big, '#'.repeat(MAX_CONFIG_BYTES + 1));
  one(big, /cannot read config file: too large: 1048577 bytes, at most 1 MiB/);
  fs.rmSync(d, { recursive: true });
});

test('parseConfig: a YAML alias bomb is a ConfigError at its first alias, quickly', () => {
  const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
  for (let i = 1; i < 9; i++) {
    const prev = String.fromCharCode(96 + i);
    lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${prev}`).join(',')}]`);
  }
  const t0 = Date.now();
  assert.throws(
    () => parseConfig(`${lines.join('\n')}\n`, 'bomb.yaml'),
    (e: unknown) =>
      e instanceof ConfigError &&
      /^bomb\.yaml:2:8: \(document\): YAML aliases expand too much \(more than 100 aliased nodes\)/.test(e.message),
  );
  assert.ok(Date.now() - t0 < 2000);
  // A few aliases are fine.
  const cfg = parseConfig('keys: { a: &p /k/a.key, b: *p }\n', 'ok.yaml');
  assert.equal(cfg.keys.b?.file, '/k/a.key');
});

test('parseConfig: an alias without its anchor is named at its own line, not called an alias bomb', () => {
  const text = 'x: &lv info\nlog:\n  level: *lv\nverifier:\n  fail: *nosuch\n';
  assert.throws(
    () => parseConfig(text, 'a.yaml'),
    (e: unknown) => e instanceof ConfigError && e.message === 'a.yaml:5:9: (document): YAML alias *nosuch has no anchor &nosuch before it',
  );
  // Used before its anchor is set: the same.
  assert.throws(
    () => parseConfig('log:\n  level: *lv\nx: &lv info\n', 'b.yaml'),
    /b\.yaml:2:10: .*YAML alias \*lv has no anchor &lv before it/,
  );
});

test('cmdline patterns: RE2 syntax only, linear time on the evil argv, argv cut at MAX_CMDLINE_MATCH', () => {
  assert.equal(cmdlinePatternError('(a+)+$'), undefined);
  assert.match(cmdlinePatternError('(a)\\1') ?? '', /invalid escape sequence/);
  assert.match(cmdlinePatternError('(?<=a)b') ?? '', /invalid named capture|invalid or unsupported Perl syntax/);
  assert.match(cmdlinePatternError('a(') ?? '', /missing closing \)/);
  const evil = compileCmdline('(a+)+$');
  // The argv that took a backtracking engine 39 s: 32 "a"s and a "!". Also one as long as is matched.
  const t0 = performance.now();
  assert.equal(evil(['prog', `${'a'.repeat(32)}!`]), false);
  assert.equal(evil([`${'a'.repeat(MAX_CMDLINE_MATCH - 1)}!`]), false);
  const ms = performance.now() - t0;
  assert.ok(ms < 200, `took ${ms} ms`);
  assert.equal(evil(['prog', 'aaa']), true);
  // Only the first MAX_CMDLINE_MATCH characters are matched.
  const tail = compileCmdline('--secret');
  assert.equal(tail(['prog', '--secret']), true);
  assert.equal(tail(['prog', 'x'.repeat(MAX_CMDLINE_MATCH), '--secret']), false);
});

test('capArgv: the logged argv is at most MAX_CMDLINE_MATCH characters joined', () => {
  const small = ['a', 'b'];
  assert.equal(capArgv(small), small);
  const cut = capArgv(['prog', 'x'.repeat(MAX_CMDLINE_MATCH * 2), 'more']);
  assert.equal(cut.join(' ').length, MAX_CMDLINE_MATCH);
  assert.equal(cut.length, 2);
});

test('DecisionLogLimiter: bursts, rates, deny kept longer, one summary per period', () => {
  let now = 1_000_000;
  const lim = new DecisionLogLimiter({ allowPerSecond: 2, denyPerSecond: 10, summarySeconds: 10 }, () => now);
  let allowed = 0;
  let denied = 0;
  for (let i = 0; i < 1000; i++) if (lim.admit('allow', 'default')) allowed++;
  for (let i = 0; i < 1000; i++) if (lim.admit('deny', 'no-x')) denied++;
  assert.equal(allowed, 20, 'burst = 10 s worth');
  assert.equal(denied, 100);
  assert.equal(lim.summary(), undefined, 'period not over');
  now += 10_000;
  // Refilled: 10 s at 2/s.
  let later = 0;
  for (let i = 0; i < 100; i++) if (lim.admit('allow', 'default')) later++;
  assert.equal(later, 20);
  const s = lim.summary();
  assert.ok(s);
  assert.deepEqual(s.suppressed, { allow: 980 + 80, deny: 900, log: 0 });
  assert.equal(s.total, 1960);
  assert.deepEqual(s.byRule, { default: 1060, 'no-x': 900 });
  assert.equal(lim.suppressedTotal, 1960);
  now += 10_000;
  assert.equal(lim.summary(), undefined, 'nothing suppressed: no line');
});

test('LogSink: a failing destination never blocks, drops and counts, says so once, recovers', async () => {
  const full = fs.openSync('/dev/full', 'w');
  const notices: string[] = [];
  const sink = new LogSink(full, 'log file /dev/full', 1000, (l) => notices.push(l));
  const t0 = performance.now();
  for (let i = 0; i < 100; i++) sink.write(`{"n":${i}}\n`);
  assert.ok(performance.now() - t0 < 50, 'write() returns at once');
  await new Promise<void>((r) => sink.flush(() => r()));
  // The first line's write failed (ENOSPC) and was dropped; while it was in flight the rest
  // queued up and went in the retry, which fails too.
  await new Promise((r) => setTimeout(r, 1200));
  await new Promise<void>((r) => sink.flush(() => r()));
  assert.equal(sink.stats.dropped, 100);
  assert.equal(sink.stats.lastError, 'ENOSPC');
  assert.equal(notices.length, 1, notices.join(''));
  assert.match(notices[0]!, /log file \/dev\/full: cannot write log lines \(ENOSPC\); dropping and counting them/);
  fs.closeSync(full);

  // Buffer bound: lines past maxBuffer are dropped at once, the rest written.
  const d = tmp();
  const fd = fs.openSync(path.join(d, 'log'), 'a');
  const s2 = new LogSink(fd, 'x', 100, undefined);
  for (let i = 0; i < 50; i++) s2.write('0123456789\n');
  await new Promise<void>((r) => s2.flush(() => r()));
  const written = fs.readFileSync(path.join(d, 'log'), 'utf8').split('\n').length - 1;
  assert.equal(written + s2.stats.dropped, 50);
  assert.ok(s2.stats.dropped > 0 && written > 0, `written ${written}, dropped ${s2.stats.dropped}`);
  fs.closeSync(fd);
  fs.rmSync(d, { recursive: true });
});
