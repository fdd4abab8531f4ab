import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTcpPacket } from '../../src/wire/build.js';
import { compat, labelPacket } from '../../src/label/compat.js';
import { LabelKey } from '../../src/label/keys.js';
import { parseCidr, parsePortRange } from '../../src/util/match.js';
import { DEFAULT_MARK } from '../../src/config/model.js';
import { decideVerifierPacket, maskShift, selectRule, withTagMark, type RuntimeVerifierRule } from '../../src/verifier/decide.js';
import { labelWith, NAT_PORTS, NAT_SRC, type LabelProfile, type PacketContext } from '../../src/label/profile.js';
import { v1 } from '../../src/label/v1.js';
import { getProfile } from '../../src/label/registry.js';
import { verifierRulePlan } from '../../src/verifier/rules.js';

const k1 = LabelKey.fromBytes(Buffer.alloc(32, 1), 'k1');
const k2 = LabelKey.fromBytes(Buffer.alloc(32, 2), 'k2');
const cidr = (t: string) => {
  const r = parseCidr(t);
  assert.ok(r.ok);
  return r.value;
};
const ports = (t: string) => {
  const r = parsePortRange(t);
  assert.ok(r.ok);
  return r.value;
};

function rule(over: Partial<RuntimeVerifierRule>): RuntimeVerifierRule {
  return { name: 'r', inInterfaces: [], outInterfaces: [], sources: [], destinations: [], ports: [], keys: [k1], action: 'drop', ...over };
}

const src = Uint8Array.of(10, 1, 0, 5);
const dst = Uint8Array.of(10, 2, 0, 9);
const plain = buildTcpPacket({ family: 4, src, dst, srcPort: 40000, dstPort: 80, seq: 77, payload: Buffer.from('hello') });
const lab = (k: LabelKey) => {
  const r = labelPacket(plain, k);
  assert.ok(r.ok);
  return Buffer.from(r.packet);
};

test('selectRule: first match wins, each criterion narrows', () => {
  const rules = [
    rule({ name: 'eth1-only', inInterfaces: ['eth1'] }),
    rule({ name: 'from-10.1', sources: [cidr('10.1.0.0/16')], ports: [ports('22')] }),
    rule({ name: 'web', destinations: [cidr('10.2.0.0/16')], ports: [ports('80-81')] }),
    rule({ name: 'any' }),
  ];
  assert.equal(selectRule(rules, src, dst, 80, 'eth0', undefined), 2);
  assert.equal(selectRule(rules, src, dst, 80, 'eth1', undefined), 0);
  assert.equal(selectRule(rules, src, dst, 22, 'eth0', undefined), 1);
  assert.equal(selectRule(rules, src, dst, 443, 'eth0', undefined), 3);
  assert.equal(selectRule(rules.slice(0, 3), src, dst, 443, 'eth0', undefined), -1);
});

test('drop action: valid goes on with the valid mark, everything else is dropped', () => {
  const rules = [rule({ action: 'drop' })];
  const v = decideVerifierPacket(compat, lab(k1), 0, rules, DEFAULT_MARK, 'eth0', undefined);
  assert.deepEqual([v.verdict, v.judged, v.mark, v.keyFingerprint], ['repeat', 'valid', DEFAULT_MARK.valid, k1.fingerprint]);
  const inv = decideVerifierPacket(compat, lab(k2), 0, rules, DEFAULT_MARK, 'eth0', undefined);
  assert.deepEqual([inv.verdict, inv.judged], ['drop', 'invalid']);
  const unl = decideVerifierPacket(compat, plain, 0, rules, DEFAULT_MARK, 'eth0', undefined);
  assert.deepEqual([unl.verdict, unl.judged], ['drop', 'unlabelled']);
  const mal = decideVerifierPacket(compat, plain.subarray(0, 30), 0, rules, DEFAULT_MARK, 'eth0', undefined);
  assert.deepEqual([mal.verdict, mal.judged], ['drop', 'malformed']);
});

test('mark action: every verdict goes on with its own mark bits; other mark bits are kept', () => {
  const rules = [rule({ action: 'mark' })];
  const other = 0x7;
  const cases: Array<[Buffer, string, number]> = [
    [lab(k1), 'valid', DEFAULT_MARK.valid],
    [lab(k2), 'invalid', DEFAULT_MARK.invalid],
    [plain, 'unlabelled', DEFAULT_MARK.unlabelled],
    [plain.subarray(0, 30), 'malformed', DEFAULT_MARK.malformed],
  ];
  for (const [pkt, judged, bits] of cases) {
    const v = decideVerifierPacket(compat, pkt, other | 0xf00, rules, DEFAULT_MARK, 'eth0', undefined);
    assert.equal(v.verdict, 'repeat');
    assert.equal(v.judged, judged);
    assert.equal(v.mark, other | bits, judged);
  }
});

test('log action: nothing is dropped', () => {
  const rules = [rule({ action: 'log' })];
  for (const pkt of [lab(k2), plain])
    assert.equal(decideVerifierPacket(compat, pkt, 0, rules, DEFAULT_MARK, 'x', undefined).verdict, 'repeat');
});

test('several keys: each rule accepts any of its keys and reports which', () => {
  const rules = [rule({ keys: [k1, k2] })];
  const v = decideVerifierPacket(compat, lab(k2), 0, rules, DEFAULT_MARK, 'eth0', undefined);
  assert.equal(v.judged, 'valid');
  assert.equal(v.keyFingerprint, k2.fingerprint);
});

test('per-rule keys: a key valid for one rule is invalid under another', () => {
  const rules = [rule({ ports: [ports('22')], keys: [k2] }), rule({ keys: [k1] })];
  assert.equal(decideVerifierPacket(compat, lab(k2), 0, rules, DEFAULT_MARK, 'e', undefined).judged, 'invalid');
});

test('tags: a valid label whose tag is not in the rule is invalid (tag-denied) and meets the rule action', () => {
  // Compat carries no tag: it is unclassified, tag 0.
  const drop = decideVerifierPacket(compat, lab(k1), 0, [rule({ tags: [300] })], DEFAULT_MARK, 'e', undefined);
  assert.deepEqual([drop.verdict, drop.judged, drop.reason, drop.mark], ['drop', 'invalid', 'tag-denied', DEFAULT_MARK.invalid]);
  const mark = decideVerifierPacket(compat, lab(k1), 0, [rule({ tags: [300], action: 'mark' })], DEFAULT_MARK, 'e', undefined);
  assert.deepEqual([mark.verdict, mark.judged, mark.mark], ['repeat', 'invalid', DEFAULT_MARK.invalid]);
  const zero = decideVerifierPacket(compat, lab(k1), 0, [rule({ tags: [0, 300] })], DEFAULT_MARK, 'e', undefined);
  assert.deepEqual([zero.verdict, zero.judged], ['repeat', 'valid']);
  // An invalid label stays invalid for its own reason, whatever the tags.
  assert.equal(decideVerifierPacket(compat, lab(k2), 0, [rule({ tags: [300] })], DEFAULT_MARK, 'e', undefined).reason, 'mac-mismatch');
});

test('withTagMark: the tag lands on the mask lowest set bit, bits outside the mask are kept, overflow is cut', () => {
  assert.equal(maskShift(0xffff0000), 16);
  assert.equal(maskShift(0x00ff0000), 16);
  assert.equal(maskShift(0), 0);
  assert.equal(withTagMark(0x100, 0xffff0000, 300), 0x012c0100);
  assert.equal(withTagMark(0xabcd0100, 0xffff0000, 0), 0x100);
  assert.equal(withTagMark(0x5, 0x0ff000, 0x1ff), 0x0ff005);
  assert.equal(withTagMark(0x5, 0, 300), 0x5);
});

test('the packet context: clock, the rule NAT tolerance and the epoch window reach the profile', () => {
  const seen: PacketContext[] = [];
  const spy: LabelProfile = {
    ...compat,
    verify: (pkt, p, keys, ctx) => {
      seen.push({ ...ctx });
      return compat.verify(pkt, p, keys, ctx);
    },
  };
  const ctx: PacketContext = { epochBefore: 0, epochAfter: 3 };
  const rules = [rule({ ports: [ports('22')], allowNat: 5 }), rule({})];
  decideVerifierPacket(spy, lab(k1), 0, rules, DEFAULT_MARK, 'e', undefined, ctx, 1_700_000_000_000);
  const ssh = buildTcpPacket({ family: 4, src, dst, srcPort: 40000, dstPort: 22, seq: 1 });
  decideVerifierPacket(spy, ssh, 0, rules, DEFAULT_MARK, 'e', undefined, ctx, 1_700_000_016_000);
  assert.deepEqual(seen, [
    { epochBefore: 0, epochAfter: 3, timeMs: 1_700_000_000_000, allowNat: 0 },
    { epochBefore: 0, epochAfter: 3, timeMs: 1_700_000_016_000, allowNat: 5 },
  ]);
});

// v1 packets, made with the v1 codec: the verifier's use of the context, tags, marks and reasons.
const NOW = 1_800_000_000_000;
const v1lab = (k: LabelKey, ctx: PacketContext, pkt: Buffer = plain): Buffer => {
  const r = labelWith(v1, pkt, k, undefined, { timeMs: NOW, ...ctx });
  assert.ok(r.ok, JSON.stringify(r));
  return Buffer.from(r.packet);
};
const decideV1 = (pkt: Buffer, rules: RuntimeVerifierRule[], ctx: PacketContext = {}, now = NOW) =>
  decideVerifierPacket(v1, pkt, 0, rules, DEFAULT_MARK, 'e', undefined, ctx, now);

test('v1: the tag of a valid label goes into the mark under tagMask in mark mode (app 300: 0x012c0000/0xffff0000)', () => {
  const pkt = v1lab(k1, { tag: 300 });
  const m = decideV1(pkt, [rule({ action: 'mark' })]);
  assert.deepEqual([m.verdict, m.judged, m.profile, m.keyId, m.tag], ['repeat', 'valid', 'v1', 0, 300]);
  assert.equal(m.mark, (0x012c0000 | DEFAULT_MARK.valid) >>> 0);
  assert.equal((m.mark & 0xffff0000) >>> 0, 0x012c0000, 'what `-m mark --mark 0x012c0000/0xffff0000` tests');
  // Another mask: the tag moves to its lowest bit.
  const low = decideVerifierPacket(
    v1,
    pkt,
    0,
    [rule({ action: 'mark' })],
    { ...DEFAULT_MARK, tagMask: 0xffff000 },
    'e',
    undefined,
    {},
    NOW,
  );
  assert.equal(low.mark, ((300 << 12) | DEFAULT_MARK.valid) >>> 0);
  // Drop mode leaves the tag bits alone; an invalid label in mark mode clears them.
  assert.equal(decideV1(pkt, [rule({ action: 'drop' })]).mark, DEFAULT_MARK.valid);
  const inv = decideVerifierPacket(
    v1,
    v1lab(k2, { tag: 300 }),
    0x012c0000,
    [rule({ action: 'mark' })],
    DEFAULT_MARK,
    'e',
    undefined,
    {},
    NOW,
  );
  assert.deepEqual([inv.judged, inv.reason, inv.mark], ['invalid', 'mac-mismatch', DEFAULT_MARK.invalid]);
});

test('v1: rule tags: the listed tag passes, another (and the untagged) is tag-denied in drop mode', () => {
  const rules = [rule({ tags: [300] })];
  assert.equal(decideV1(v1lab(k1, { tag: 300 }), rules).judged, 'valid');
  for (const tag of [301, 0]) {
    const d = decideV1(v1lab(k1, { tag }), rules);
    assert.deepEqual([d.verdict, d.judged, d.reason, d.tag], ['drop', 'invalid', 'tag-denied', tag]);
  }
});

test('v1: the epoch window from the context: a 100 s old label is stale by default, valid with before: 8', () => {
  const old = v1lab(k1, { timeMs: NOW - 100_000 });
  const d = decideV1(old, [rule({})]);
  assert.deepEqual([d.judged, d.reason], ['invalid', 'stale-epoch']);
  assert.equal(decideV1(old, [rule({})], { epochBefore: 8, epochAfter: 1 }).judged, 'valid');
  // The same label at its own time is valid: only the clock differs.
  assert.equal(decideV1(old, [rule({})], {}, NOW - 100_000).judged, 'valid');
});

test('v1: NAT flags are refused unless the rule allows them (nat-mode-denied), then verified', () => {
  const pkt = v1lab(k1, { nat: NAT_SRC | NAT_PORTS });
  const d = decideV1(pkt, [rule({})]);
  assert.deepEqual([d.verdict, d.judged, d.reason], ['drop', 'invalid', 'nat-mode-denied']);
  assert.equal(decideV1(pkt, [rule({ allowNat: NAT_SRC })]).reason, 'nat-mode-denied', 'ports not allowed');
  assert.equal(decideV1(pkt, [rule({ allowNat: NAT_SRC | NAT_PORTS })]).judged, 'valid');
  // The context is reset per packet: the next rule's strictness applies to the next packet.
  const ctx: PacketContext = {};
  decideV1(pkt, [rule({ allowNat: NAT_SRC | NAT_PORTS })], ctx);
  assert.equal(decideV1(pkt, [rule({})], ctx).reason, 'nat-mode-denied');
});

test('v1: key ids: a label naming a key the rule lacks is unknown-key; the right id verifies; bad version bits are malformed', () => {
  const k3 = k1.withKeyId(3);
  const pkt = v1lab(k3, {});
  assert.deepEqual([decideV1(pkt, [rule({ keys: [k1] })]).reason], ['unknown-key']);
  const ok = decideV1(pkt, [rule({ keys: [k1, k3] })]);
  assert.deepEqual([ok.judged, ok.keyId, ok.keyFingerprint], ['valid', 3, k3.fingerprint]);
  // Byte 4 of the option: version bits 01 -> 10.
  const bad = Buffer.from(pkt);
  const at = bad.indexOf(Buffer.from([253, 20, 0x46, 0x77]));
  assert.ok(at > 0);
  bad[at + 4] = (bad[at + 4]! & 0x3f) | 0x80;
  const m = decideV1(bad, [rule({ keys: [k3] })]);
  assert.deepEqual([m.verdict, m.judged, m.reason], ['drop', 'malformed', 'bad-label-version']);
});

test("profile 'any': both label lengths are judged, each by its own profile; the kernel's unlabelled rule still tests option 253", () => {
  const anyProfile = getProfile('any');
  const rules = [rule({})];
  const c = decideVerifierPacket(anyProfile, lab(k1), 0, rules, DEFAULT_MARK, 'e', undefined, {}, NOW);
  assert.deepEqual([c.judged, c.profile], ['valid', 'compat']);
  const v = decideVerifierPacket(anyProfile, v1lab(k1, { tag: 7 }), 0, rules, DEFAULT_MARK, 'e', undefined, {}, NOW);
  assert.deepEqual([v.judged, v.profile, v.tag], ['valid', 'v1', 7]);
  assert.equal(decideVerifierPacket(anyProfile, plain, 0, rules, DEFAULT_MARK, 'e', undefined, {}, NOW).judged, 'unlabelled');
  const plan = verifierRulePlan(4, {
    hook: 'forward',
    queues: [0],
    failOpen: false,
    markMask: 0xf00,
    optionKind: anyProfile.optionKind,
    selections: [rules[0]!],
  });
  const kernel = plan.chains.find((ch) => ch.chain.endsWith('-KERNEL'))!.rules.map((r) => r.join(' '));
  assert.ok(
    kernel.some((r) => r.includes('! --tcp-option 253 -g')),
    kernel.join('\n'),
  );
});
