import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTcpPacket } from '../../src/wire/build.js';
import { compat, labelPacket } from '../../src/label/compat.js';
import { LabelKey } from '../../src/label/keys.js';
import { parseCidr, parsePortRange } from '../../src/util/match.js';
import { DEFAULT_MARK } from '../../src/config/model.js';
import { decideVerifierPacket, maskShift, selectRule, withTagMark, type RuntimeVerifierRule } from '../../src/verifier/decide.js';
import type { LabelProfile, PacketContext } from '../../src/label/profile.js';

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
