// Interface selection as iptables does it, and the verifier never passing a packet that
// iptables queued without judging it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTcpPacket } from '../../src/wire/build.js';
import { compat } from '../../src/label/compat.js';
import { LabelKey } from '../../src/label/keys.js';
import { DEFAULT_MARK } from '../../src/config/model.js';
import { parseConfig } from '../../src/config/load.js';
import { ifaceMatches } from '../../src/util/ifaces.js';
import { decideVerifierPacket, selectRule, type RuntimeVerifierRule } from '../../src/verifier/decide.js';
import { parseCidr } from '../../src/util/match.js';

const k1 = LabelKey.fromBytes(Buffer.alloc(32, 1), 'k1');
const rule = (over: Partial<RuntimeVerifierRule>): RuntimeVerifierRule => ({
  name: 'r',
  inInterfaces: [],
  outInterfaces: [],
  sources: [],
  destinations: [],
  ports: [],
  keys: [k1],
  action: 'drop',
  ...over,
});
const src = Uint8Array.of(10, 1, 0, 5);
const dst = Uint8Array.of(10, 2, 0, 9);
const plain = buildTcpPacket({ family: 4, src, dst, srcPort: 40000, dstPort: 80, seq: 77, payload: Buffer.from('x') });

test('ifaceMatches: iptables semantics (libxtables xtables_parse_interface): trailing + is a prefix, else exact', () => {
  const cases: Array<[string, string, boolean]> = [
    ['eth+', 'eth0', true],
    ['eth+', 'eth', true], // the mask covers the prefix only: the bare prefix matches too
    ['eth+', 'eth10.100', true],
    ['eth+', 'et', false],
    ['eth+', 'veth0', false],
    ['+', 'anything', true],
    ['+', 'lo', true],
    ['eth0', 'eth0', true],
    ['eth0', 'eth00', false], // without "+" the NUL is part of the match
    ['eth0', 'eth', false],
    ['e+th', 'e+th', true], // "+" elsewhere is an ordinary character
    ['e+th', 'eXth', false],
    ['Eth+', 'eth0', false], // case matters
  ];
  for (const [p, n, want] of cases) assert.equal(ifaceMatches(p, n), want, `${p} vs ${n}`);
});

test('selectRule: a wildcard rule selects what iptables selects; first match still wins', () => {
  const rules = [
    rule({ name: 'veth', inInterfaces: ['veth+'] }),
    rule({ name: 'eth1-out', outInterfaces: ['eth1'] }),
    rule({ name: 'wide', inInterfaces: ['+'] }),
  ];
  assert.equal(selectRule(rules, src, dst, 80, 'veth3a', undefined), 0);
  assert.equal(selectRule(rules, src, dst, 80, 'eth0', 'eth1'), 1);
  assert.equal(selectRule(rules, src, dst, 80, 'eth0', 'eth10'), 2);
  assert.equal(selectRule(rules, src, dst, 80, undefined, undefined), -1);
  assert.equal(selectRule(rules.slice(0, 2), src, dst, 80, 'eth0', undefined), -1);
});

test('a queued packet no rule matches here (unknown or renamed interface) is judged, not passed', () => {
  const rules = [
    rule({
      name: 'from-eth1',
      inInterfaces: ['eth1+'],
      destinations: [(parseCidr('10.2.0.0/16') as { ok: true; value: never }).value],
      action: 'drop',
    }),
  ];
  // The interface is not known (yet) to the handler: before, this was `unmatched` and accepted.
  const v = decideVerifierPacket(compat, plain, 0, rules, DEFAULT_MARK, undefined, undefined);
  assert.deepEqual([v.verdict, v.judged, v.rule, v.fallback], ['drop', 'unlabelled', 0, true]);
  const renamed = decideVerifierPacket(compat, plain, 0, rules, DEFAULT_MARK, 'wan0', undefined);
  assert.deepEqual([renamed.verdict, renamed.judged, renamed.fallback], ['drop', 'unlabelled', true]);
  const matched = decideVerifierPacket(compat, plain, 0, rules, DEFAULT_MARK, 'eth12', undefined);
  assert.deepEqual([matched.verdict, matched.judged, matched.fallback], ['drop', 'unlabelled', undefined]);
});

test('config: interface names are checked like iptables and the kernel take them', () => {
  const ok = ['eth0', 'eth+', '+', 'br-1a2b3c4d5e6f', 'vlan.100', 'a_b', 'x'.repeat(15), `${'x'.repeat(14)}+`];
  const bad = ['', 'x'.repeat(16), `${'x'.repeat(15)}+`, 'eth0:1', 'a/b', 'a b', '.', '..', 'e+th+x', 'ëth0', '"q"'];
  for (const n of ok) assert.deepEqual(parseConfig(`agent:\n  interfaces: [${JSON.stringify(n)}]\n`, 'c.yaml').agent.interfaces, [n], n);
  for (const n of bad)
    assert.throws(
      () => parseConfig(`verifier:\n  rules:\n    - in_interfaces: [${JSON.stringify(n)}]\n`, 'c.yaml'),
      /in_interfaces\[0\]: (must be an interface name|must not be empty)/,
      n,
    );
});
