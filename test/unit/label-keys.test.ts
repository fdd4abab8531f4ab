import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspect } from 'node:util';
import { createHash } from 'node:crypto';
import { KeyFileError, LabelKey, generateKeyFile, loadKeyFile } from '../../src/label/keys.js';

const made: string[] = [];
function tmpdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-keys-'));
  made.push(d);
  return d;
}
after(() => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

const HEX = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

test('a LabelKey never shows its secret: toString, JSON, inspect, template strings', () => {
  const k = LabelKey.fromBytes(Buffer.from(HEX, 'hex'), 'test');
  const id = createHash('sha256').update(Buffer.from(HEX, 'hex')).digest('hex').slice(0, 8);
  assert.equal(k.fingerprint, id);
  for (const s of [String(k), `${k}`, JSON.stringify(k), inspect(k), inspect({ nested: [k] }, { depth: 9, showHidden: true })]) {
    assert.ok(!s.includes(HEX.slice(0, 16)), s);
    assert.ok(!s.includes('ABEiM0RVZneImaq7zN3u'), s); // base64 of the key's start
    assert.ok(s.includes(id), s);
  }
  assert.equal(k.length, 32);
});

test('LabelKey.fromBytes refuses short keys unless asked', () => {
  assert.throws(() => LabelKey.fromBytes(Buffer.alloc(15)), RangeError);
  assert.equal(LabelKey.fromBytes(Buffer.alloc(8), 'vector', true).length, 8);
});

function expectKeyError(fn: () => unknown, code: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof KeyFileError);
    assert.equal(e.code, code);
    assert.match(e.message, re);
    assert.ok(!e.message.includes(HEX.slice(0, 12)));
    return true;
  });
}

test('loadKeyFile: accepts 0600 hex with surrounding whitespace', () => {
  const d = tmpdir();
  const f = path.join(d, 'k');
  fs.writeFileSync(f, `\n  ${HEX.toUpperCase()} \n\n`, { mode: 0o600 });
  const k = loadKeyFile(f);
  assert.equal(k.fingerprint, LabelKey.fromBytes(Buffer.from(HEX, 'hex')).fingerprint);
  assert.equal(k.source, f);
});

test('loadKeyFile: refuses group/other-readable files and says chmod 600', () => {
  const d = tmpdir();
  for (const mode of [0o644, 0o640, 0o604, 0o660, 0o700 | 0o004]) {
    const f = path.join(d, `k${mode.toString(8)}`);
    fs.writeFileSync(f, HEX);
    fs.chmodSync(f, mode);
    expectKeyError(() => loadKeyFile(f), 'permissions', new RegExp(`${f}.*refused.*mode 0${(mode & 0o777).toString(8)}.*chmod 600`));
  }
});

test('loadKeyFile: missing, not hex, odd length, too short, directory', () => {
  const d = tmpdir();
  const w = (name: string, text: string): string => {
    const f = path.join(d, name);
    fs.writeFileSync(f, text, { mode: 0o600 });
    return f;
  };
  expectKeyError(() => loadKeyFile(path.join(d, 'nope')), 'missing', /nope: no such file/);
  expectKeyError(() => loadKeyFile(w('nothex', `zz${HEX}`)), 'not-hex', /nothex: not hexadecimal/);
  expectKeyError(() => loadKeyFile(w('inner', `${HEX.slice(0, 32)} ${HEX.slice(32)}`)), 'not-hex', /not hexadecimal/);
  expectKeyError(() => loadKeyFile(w('odd', `${HEX}a`)), 'odd-length', /odd number of hex digits \(65\)/);
  expectKeyError(() => loadKeyFile(w('short', HEX.slice(0, 30))), 'too-short', /15 bytes; at least 16/);
  expectKeyError(() => loadKeyFile(w('empty', '  \n')), 'too-short', /empty/);
  fs.mkdirSync(path.join(d, 'dir'), { mode: 0o700 });
  expectKeyError(() => loadKeyFile(path.join(d, 'dir')), 'not-a-file', /not a regular file/);
  // Exactly 16 bytes is enough.
  assert.equal(loadKeyFile(w('sixteen', HEX.slice(0, 32))).length, 16);
});

test('generateKeyFile: 32 random bytes, mode 0600, refuses to overwrite unless force', () => {
  const d = tmpdir();
  const f = path.join(d, 'new.key');
  const old = process.umask(0o000); // even with a permissive umask the file must be 0600
  try {
    const id = generateKeyFile(f);
    assert.equal(fs.statSync(f).mode & 0o777, 0o600);
    const text = fs.readFileSync(f, 'utf8');
    assert.match(text, /^[0-9a-f]{64}\n$/);
    assert.equal(loadKeyFile(f).fingerprint, id);
    expectKeyError(() => generateKeyFile(f), 'exists', /already exists.*--force/);
    assert.equal(fs.readFileSync(f, 'utf8'), text);
    const id2 = generateKeyFile(f, { force: true });
    assert.notEqual(id2, id);
    assert.notEqual(fs.readFileSync(f, 'utf8'), text);
    assert.equal(fs.statSync(f).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(d), ['new.key']); // no temporary left behind
    expectKeyError(() => generateKeyFile(path.join(d, 'no', 'such', 'dir', 'k')), 'missing', /directory does not exist/);
  } finally {
    process.umask(old);
  }
});

test('a key given where its key file belongs is never echoed: bare, 0x, in a folder (a config resolves it), exists with a bad mode', () => {
  const d = tmpdir();
  const KEY = 'c7ef0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7';
  const said = 'key file: the value given looks like a key, not a file name (give the path of a key file)';
  for (const v of [KEY, `0x${KEY}`, KEY.toUpperCase(), path.join(d, KEY), KEY.slice(0, 32), ` ${KEY}\n`]) {
    assert.throws(
      () => loadKeyFile(v),
      (e: unknown) => {
        assert.ok(e instanceof KeyFileError);
        assert.equal(e.code, 'missing');
        assert.equal(e.message, said);
        const all = JSON.stringify({ ...e, m: e.message, s: e.stack }).toLowerCase();
        assert.ok(!all.includes(KEY.slice(0, 16)), 'not in the message, stack or fields');
        return true;
      },
    );
  }
  // A file that exists under such a name: its problems are told without the name.
  const f = path.join(d, KEY);
  fs.writeFileSync(f, HEX);
  fs.chmodSync(f, 0o644);
  assert.throws(
    () => loadKeyFile(f),
    (e: unknown) => {
      assert.ok(e instanceof KeyFileError);
      assert.equal(e.code, 'permissions');
      assert.match(e.message, /^key file: refused: mode 0644 .*chmod 600 FILE \(the file's name is not shown: it looks like a key\)$/);
      assert.ok(!`${e.message}${e.stack}${e.file}`.includes(KEY.slice(0, 16)));
      return true;
    },
  );
  // Short hex names and ordinary names are still named.
  expectKeyError(() => loadKeyFile(path.join(d, 'abcdef0123')), 'missing', /abcdef0123: no such file/);
  expectKeyError(() => loadKeyFile(path.join(d, 'site.key')), 'missing', /site\.key: no such file/);
});
