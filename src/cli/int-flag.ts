// Integer flags, one rule for all: decimal digits only (`1e1`, `0x2`, `1.0`, `abc` are not
// numbers here), as the config's integers (its schema refuses those in the file too).
import { CliError } from './errors.js';

const DECIMAL = /^-?[0-9]+$/;

/**
 * A daemon's integer flag: the number when it is decimal digits, else the text unchanged, for
 * the config schema to refuse with the message it gives the file (daemon/resolve.ts).
 */
export function int(v: string): number | string {
  return DECIMAL.test(v) ? Number(v) : v;
}

/**
 * A commander parser for an integer flag of min..max that no config key checks: anything else
 * is refused at once (exit 2), in the config's words: `--n: must be an integer from 1 to 600, got "abc"`.
 */
export function intFlag(flag: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = int(v);
    if (typeof n !== 'number' || n < min || n > max) {
      throw new CliError(`${flag}: must be an integer from ${min} to ${max}, got ${typeof n === 'number' ? n : JSON.stringify(v)}`);
    }
    return n;
  };
}
