// Sources that sent a judged-bad segment (invalid MAC, or option 253 that is not our label, or
// malformed) are listed in the kernel's xt_recent list of the verifier's rules; the kernel then
// limits them per source and serves them from the suspect queue (verifier/rules.ts). A genuine
// agent never sends such segments, so listing costs a genuine, unspoofed source nothing.
import { writeFileSync } from 'node:fs';
import { formatAddress } from '../wire/packet.js';
import { SUSPECT_LIST } from './rules.js';

/** Re-written this often while bad segments keep coming, to keep the entry's last-seen fresh. */
const REFRESH_MS = 2000;
const MAX_TRACKED = 65_536;

export class SuspectList {
  private readonly lastWrite = new Map<string, number>();
  writes = 0;
  failures = 0;

  constructor(private readonly path = `/proc/net/xt_recent/${SUSPECT_LIST}`) {}

  /** Called for every bad segment; writes to the kernel at most every REFRESH_MS per source. */
  note(src: Uint8Array, now = Date.now()): void {
    const key = Buffer.from(src.buffer, src.byteOffset, src.byteLength).toString('hex');
    const last = this.lastWrite.get(key);
    if (last !== undefined && now - last < REFRESH_MS) return;
    if (this.lastWrite.size >= MAX_TRACKED) this.lastWrite.clear();
    this.lastWrite.set(key, now);
    try {
      // One short write to procfs: a memory operation in the kernel, it does not block.
      writeFileSync(this.path, `+${formatAddress(src)}\n`);
      this.writes++;
    } catch {
      // The rules (and so the list) do not exist yet or any more: nothing to limit.
      this.failures++;
    }
  }
}
