import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(root, 'bin', 'labelwall');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-keygen-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function lw(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('keygen writes a 32-byte hex key with mode 0600 and never prints it', () => {
  const f = path.join(dir, 'a.key');
  const r = lw('keygen', '--out', f);
  assert.equal(r.code, 0, r.stderr);
  const hex = fs.readFileSync(f, 'utf8').trim();
  assert.match(hex, /^[0-9a-f]{64}$/);
  assert.equal(fs.statSync(f).mode & 0o777, 0o600);
  assert.match(r.stdout, /fingerprint [0-9a-f]{8}/);
  assert.ok(!r.stdout.includes(hex.slice(0, 12)) && !r.stderr.includes(hex.slice(0, 12)));
  // The key works for the other commands (they accept it: no refusal).
  const v = lw('pcap', 'verify', path.join(root, 'test', 'fixtures', 'demo-unlabelled.pcap'), '--key-file', f);
  assert.equal(v.code, 0, v.stderr);
  assert.ok(!v.stdout.includes(hex.slice(0, 12)));
});

test('keygen refuses to overwrite without --force, replaces with it', () => {
  const f = path.join(dir, 'b.key');
  assert.equal(lw('keygen', '-o', f).code, 0);
  const first = fs.readFileSync(f, 'utf8');
  const again = lw('keygen', '-o', f);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /b\.key: already exists; use --force/);
  assert.equal(fs.readFileSync(f, 'utf8'), first);
  const forced = lw('keygen', '-o', f, '--force');
  assert.equal(forced.code, 0);
  assert.notEqual(fs.readFileSync(f, 'utf8'), first);
  assert.equal(fs.statSync(f).mode & 0o777, 0o600);
});

test('keygen usage errors exit 2', () => {
  assert.equal(lw('keygen').code, 2);
  assert.match(lw('keygen').stderr, /required option '-o, --out <file>' not specified/);
  assert.equal(lw('keygen', '--out').code, 2);
  assert.equal(lw('keygen', '--out', path.join(dir, 'c.key'), '--unknown').code, 2);
  assert.ok(!fs.existsSync(path.join(dir, 'c.key')));
  const r = lw('keygen', '--out', path.join(dir, 'missing', 'k'));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /directory does not exist/);
});
