// The "any" profile: verify-only. It judges a segment by the label it carries (40 bytes:
// compat, 16 or 20: v1) and says which in VerifyResult.profile. For analysis (`pcap verify`
// defaults to it) and for verifiers in front of a mixed fleet during a migration. It cannot
// label: a labeller must choose a wire format.
import { compat } from './compat.js';
import type { LabelProfile, LabelResult, VerifyResult } from './profile.js';
import { findV1Option, isV1Option, V1_EXID, V1_KIND, verifyV1 } from './v1.js';

const COMPAT_LENGTH = compat.optionLength;

export const any: LabelProfile = {
  name: 'any',
  formatVersion: 'v1+compat',
  optionKind: V1_KIND,
  optionLength: COMPAT_LENGTH,
  overhead: Math.max(compat.overhead, 20),
  // Never used to label; these are the needs of the larger label (compat's), should anyone ask.
  handshake: compat.handshake,
  label: (): LabelResult => ({ ok: false, verdict: 'skipped', reason: 'label-needs-a-profile' }),
  verify(pkt, p, keys, ctx): VerifyResult {
    if (!p.tcp) return { verdict: 'skipped', reason: 'not-tcp' };
    const f = findV1Option(pkt, p.tcp);
    if (f.found && pkt[f.offset + 1] === COMPAT_LENGTH) {
      const r = compat.verify(pkt, p, keys, ctx);
      r.profile = 'compat';
      return r;
    }
    // v1's verify repeats the walk and gives the same no-label/malformed answers.
    return verifyV1(pkt, p, keys, ctx);
  },
  findOption: findV1Option,
  isOwnOption: (buf, at, len) =>
    isV1Option(buf, at, len) || (len === COMPAT_LENGTH && buf[at] === V1_KIND && ((buf[at + 2]! << 8) | buf[at + 3]!) === V1_EXID),
};
