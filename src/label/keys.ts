// Label keys and key files. A key's secret never leaves this object as text: toString, toJSON
// and util.inspect show only the non-secret id (a fingerprint), so a key that reaches a log
// line or an error message cannot leak.
import { createHash, createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inspect } from 'node:util';
import { createMacEngine, macOnce, type MacEngine } from './hmac.js';
import { describeFileType, readRegularFile, ReadFileError } from '../util/files.js';

export const MIN_KEY_BYTES = 16;
const NOTHING = new Uint8Array(0);
const derivedScratch = Buffer.alloc(32);
export const GENERATED_KEY_BYTES = 32;
/** Largest key id a v1 label can name (3 bits). */
export const MAX_KEY_ID = 7;

export class LabelKey {
  readonly #secret: KeyObject;
  /** Non-secret fingerprint: first 8 hex digits of SHA-256(key). Names a key in logs and output. */
  readonly fingerprint: string;
  /** Where the key came from (a file path or a description); never the key. */
  readonly source: string;
  /** The key id a v1 label names (0-7; `keys:` entries `{ file, id }`, default 0). compat ignores it. */
  readonly keyId: number;

  private constructor(secret: Buffer, source: string, keyId: number) {
    this.#secret = createSecretKey(secret);
    this.fingerprint = createHash('sha256').update(secret).digest('hex').slice(0, 8);
    this.source = source;
    this.keyId = keyId;
    secret.fill(0); // our private copy; the KeyObject holds its own
  }

  /** Builds a key from raw bytes (copied). Throws RangeError if shorter than MIN_KEY_BYTES unless allowShort (test vectors). */
  static fromBytes(bytes: Uint8Array, source = 'bytes', allowShort = false, keyId = 0): LabelKey {
    if (!allowShort && bytes.length < MIN_KEY_BYTES) throw new RangeError(`key shorter than ${MIN_KEY_BYTES} bytes`);
    if (!Number.isInteger(keyId) || keyId < 0 || keyId > MAX_KEY_ID) throw new RangeError(`key id ${keyId} is not 0-${MAX_KEY_ID}`);
    return new LabelKey(Buffer.from(bytes), source, keyId);
  }

  /** The same secret under another key id (a key file named by a `{ file, id }` entry). */
  withKeyId(keyId: number): LabelKey {
    const secret = this.#secret.export();
    try {
      return LabelKey.fromBytes(secret, this.source, true, keyId);
    } finally {
      secret.fill(0);
    }
  }

  /**
   * A key derived from this one: HMAC-SHA256(this key, info), as a LabelKey with the same key id
   * and source (v1's per-tag key). The derived secret never leaves the new object either.
   */
  derive(info: Uint8Array): LabelKey {
    const bytes = createHmac('sha256', this.#secret).update(info).digest();
    try {
      return LabelKey.fromBytes(bytes, this.source, false, this.keyId);
    } finally {
      bytes.fill(0);
    }
  }

  /**
   * HMAC-SHA256(HMAC-SHA256(this key, info), a || b): a MAC under the key derive(info) would
   * give, without making or keeping that key (no KeyObject, no context, nothing cached). What a
   * verifier pays for a v1 tag not yet proven by a valid label, so a forger cycling through
   * tags cannot make every packet build a key. The result is reused by the next call.
   */
  macDerived(info: Uint8Array, a: Uint8Array, b: Uint8Array): Buffer {
    const k = derivedScratch;
    this.mac(info, NOTHING).copy(k);
    try {
      return macOnce(k, a, b);
    } finally {
      k.fill(0);
    }
  }

  #engine: MacEngine | undefined;

  /**
   * HMAC-SHA256(key, a || b) on the fast path (libcrypto when available, see hmac.ts). The
   * result is a buffer reused by the next call on this key: copy it to keep it.
   */
  mac(a: Uint8Array, b: Uint8Array): Buffer {
    return (this.#engine ??= this.#newEngine()).mac(a, b);
  }

  /** Which HMAC implementation mac() uses ('libcrypto' or 'node'). */
  get macBackend(): 'libcrypto' | 'node' {
    return (this.#engine ??= this.#newEngine()).backend;
  }

  #newEngine(): MacEngine {
    const secret = this.#secret.export();
    try {
      return createMacEngine(this.#secret, secret);
    } finally {
      secret.fill(0);
    }
  }

  /** Key length in bytes (not secret). */
  get length(): number {
    return this.#secret.symmetricKeySize ?? 0;
  }

  toString(): string {
    return `LabelKey(${this.fingerprint})`;
  }

  toJSON(): { fingerprint: string; source: string } {
    return { fingerprint: this.fingerprint, source: this.source };
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

export type KeyFileErrorCode =
  | 'missing'
  | 'unreadable'
  | 'not-a-file'
  | 'too-large'
  | 'permissions'
  | 'owner'
  | 'not-hex'
  | 'odd-length'
  | 'too-short'
  | 'exists';

/** What looks like a key in text: 32 or more hex digits, optionally 0x (match case-insensitively). */
export const KEY_MATERIAL_HEX = '(?:0x)?[0-9a-f]{32,}';
const KEY_MATERIAL_WHOLE = new RegExp(`^\\s*${KEY_MATERIAL_HEX}\\s*$`, 'i');

/**
 * True when a key file "path" looks like key material rather than a file name: its last
 * component is 32 or more hex digits (optionally 0x), as when a key is given where its file
 * belongs (`--key-file <64 hex digits>`, `keys: { main: <64 hex digits> }`, which the config
 * resolves against its folder). Such a value is never echoed.
 */
export function looksLikeKeyMaterial(file: string): boolean {
  return KEY_MATERIAL_WHOLE.test(path.basename(file));
}

/** A key file path as a hint in a message shows it (`run chmod 600 FILE`): a placeholder for one that looks like a key. */
function shownKeyFile(file: string): string {
  return looksLikeKeyMaterial(file) ? 'FILE' : file;
}

/** What a key given where its file belongs is told. */
const KEY_GIVEN_AS_FILE = 'the value given looks like a key, not a file name (give the path of a key file)';

/**
 * A key file problem; the message names the file and the reason, never the key. A "file" that
 * looks like key material is not named: not in the message, not in `file` (a logged error
 * object carries its fields).
 */
export class KeyFileError extends Error {
  readonly code: KeyFileErrorCode;
  readonly file: string;
  constructor(file: string, code: KeyFileErrorCode, message: string) {
    const keyLike = looksLikeKeyMaterial(file);
    const why = keyLike && message !== KEY_GIVEN_AS_FILE ? `${message} (the file's name is not shown: it looks like a key)` : message;
    super(keyLike ? `key file: ${why}` : `key file ${file}: ${why}`);
    this.name = 'KeyFileError';
    this.code = code;
    this.file = keyLike ? '(not shown)' : file;
  }
}

/** Parses key file text: hexadecimal, surrounding whitespace ignored. Pure; used by loadKeyFile. */
export function parseKeyText(text: string, file: string): Buffer {
  const hex = text.trim();
  if (hex.length === 0) throw new KeyFileError(file, 'too-short', `empty; expected at least ${MIN_KEY_BYTES} bytes as hexadecimal`);
  if (!/^[0-9a-fA-F]+$/.test(hex)) throw new KeyFileError(file, 'not-hex', 'not hexadecimal (expected only 0-9, a-f)');
  if (hex.length % 2 !== 0) throw new KeyFileError(file, 'odd-length', `odd number of hex digits (${hex.length})`);
  const bytes = Buffer.from(hex, 'hex');
  if (bytes.length < MIN_KEY_BYTES) {
    throw new KeyFileError(
      file,
      'too-short',
      `key is ${bytes.length} bytes; at least ${MIN_KEY_BYTES} required (${GENERATED_KEY_BYTES} recommended)`,
    );
  }
  return bytes;
}

/** Largest key file read (the hex of a 32-byte key is 65 bytes; this leaves room for whitespace). */
export const MAX_KEY_FILE_BYTES = 4096;

/**
 * Reads a key file. Refuses: a missing file; anything but a regular file (a FIFO or device is
 * never opened for blocking reads, see util/files.ts); files larger than MAX_KEY_FILE_BYTES; files
 * that group or others may access (mode & 0o077); files owned by anyone but root or the user
 * running labelwall (that user could swap the key); and contents that are not an even number of
 * hex digits of at least 16 bytes.
 */
export function loadKeyFile(file: string, keyId = 0): LabelKey {
  const shown = shownKeyFile(file);
  let raw: Buffer;
  try {
    raw = readRegularFile(file, MAX_KEY_FILE_BYTES, (st) => {
      if ((st.mode & 0o077) !== 0) {
        const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
        throw new KeyFileError(file, 'permissions', `refused: mode ${mode} lets group or others access the key; run chmod 600 ${shown}`);
      }
      const me = process.geteuid?.() ?? 0;
      if (st.uid !== 0 && st.uid !== me) {
        throw new KeyFileError(
          file,
          'owner',
          `refused: owned by uid ${st.uid}, which could replace the key; it must belong to root${me !== 0 ? ` or uid ${me} (the user running labelwall)` : ''}: run chown ${me === 0 ? 'root' : me} ${shown}`,
        );
      }
    });
  } catch (e) {
    if (e instanceof ReadFileError) {
      // A key where its file belongs (`--key-file <hex>`): say so, without echoing it.
      const missingKey = e.code === 'missing' && looksLikeKeyMaterial(file);
      throw new KeyFileError(file, e.code, missingKey ? KEY_GIVEN_AS_FILE : e.message);
    }
    throw e;
  }
  const text = raw.toString('utf8');
  raw.fill(0);
  const bytes = parseKeyText(text, file);
  const key = LabelKey.fromBytes(bytes, file, false, keyId);
  bytes.fill(0);
  return key;
}

/**
 * Writes a new random 32-byte key as hex to `file` with mode 0600. The file is created with
 * that mode from the start (never briefly readable). An existing file is refused unless force,
 * in which case the new key is written to a temporary file beside it and renamed over it.
 * Returns the new key's fingerprint.
 */
export function generateKeyFile(file: string, opts: { force?: boolean } = {}): string {
  const bytes = randomBytes(GENERATED_KEY_BYTES);
  const text = `${bytes.toString('hex')}\n`;
  const fingerprint = createHash('sha256').update(bytes).digest('hex').slice(0, 8);
  bytes.fill(0);
  // Only a regular file may be replaced: renaming over /dev/full or a FIFO would swap a device
  // node for a key file. lstat: a symbolic link is refused too (the rename would replace the
  // link, not what it points to).
  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(file);
  } catch {
    existing = undefined; // a new path (or an unreadable directory: the write below says so)
  }
  if (existing !== undefined && !existing.isFile()) {
    throw new KeyFileError(
      file,
      'not-a-file',
      `exists and is ${describeFileType(existing)}; refusing to replace it (only a regular file or a new path)`,
    );
  }
  if (!opts.force) {
    try {
      fs.writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new KeyFileError(file, 'exists', 'already exists; use --force to replace it');
      if (code === 'ENOENT') throw new KeyFileError(file, 'missing', 'directory does not exist');
      throw new KeyFileError(file, 'unreadable', `cannot create (${code ?? 'error'})`);
    }
    fs.chmodSync(file, 0o600); // in case the umask was odd; mode can only have been narrower
    return fingerprint;
  }
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    fs.writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
    fs.chmodSync(tmp, 0o600);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new KeyFileError(file, 'missing', 'directory does not exist');
    throw new KeyFileError(file, 'unreadable', `cannot write (${code ?? 'error'})`);
  }
  return fingerprint;
}
