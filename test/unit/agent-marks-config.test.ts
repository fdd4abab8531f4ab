// agent.mark: configurable like verifier.mark, validated (non-zero, disjoint, outside the
// verifier's mask), and used by every place that sets or matches the agent's bits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/messages.js';
import { DEFAULT_AGENT_MARK } from '../../src/config/marks.js';
import { agentRulePlan } from '../../src/agent/rules.js';
import { renderRestore } from '../../src/datapath/iptables.js';
import { egressMark } from '../../src/agent/egress.js';
import { decideAgentPacket, NF_INET_LOCAL_OUT } from '../../src/agent/decide.js';
import { compat } from '../../src/label/compat.js';
import { LabelKey } from '../../src/label/keys.js';
import { buildTcpPacket } from '../../src/wire/build.js';

function problems(text: string): string[] {
  try {
    parseConfig(text, 'm.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems.map((p) => `${p.line}:${p.col}: ${p.path}: ${p.message}`);
  }
  return [];
}

test('defaults avoid kube-proxy (0x4000, 0x8000), Calico (0xffff0000), Cilium (0xf00, 0x1000) and the verifier mask', () => {
  const c = parseConfig('', 'e.yaml');
  assert.deepEqual(c.agent.mark, { done: 0x2, deny: 0x4, allow: 0x8 });
  const all = DEFAULT_AGENT_MARK.done | DEFAULT_AGENT_MARK.deny | DEFAULT_AGENT_MARK.allow;
  for (const other of [0x4000, 0x8000, 0xffff0000, 0xf00, 0x1000, c.verifier.mark.mask])
    assert.equal((all & other) >>> 0, 0, other.toString(16));
});

test('agent.mark values: integers or strings, like verifier.mark', () => {
  const c = parseConfig('agent:\n  mark: { done: 0x10000, deny: "0x20000", allow: "262144" }\n', 'm.yaml');
  assert.deepEqual(c.agent.mark, { done: 0x10000, deny: 0x20000, allow: 0x40000 });
});

test('agent.mark mistakes: zero, shared bits, inside the verifier mask, not a number', () => {
  assert.deepEqual(problems('agent:\n  mark: { done: 0 }\n'), [
    '2:17: agent.mark.done: mark value must not be 0 (0 is indistinguishable from "not marked")',
  ]);
  assert.deepEqual(problems('agent:\n  mark: { deny: 0x3 }\n'), [
    '2:17: agent.mark.deny: 0x3 shares bits 0x2 with agent.mark.done (each mark needs bits of its own)',
  ]);
  assert.deepEqual(problems('agent:\n  mark: { allow: 0x200 }\n'), [
    "2:18: agent.mark.allow: 0x200 overlaps the verifier's mark mask 0xf00: a verifier on the same host would take the agent's packets as already judged",
  ]);
  assert.deepEqual(problems('agent:\n  mark: { done: "0xzz" }\n'), ['2:17: agent.mark.done: "0xzz" is not a 32-bit unsigned integer']);
  assert.deepEqual(problems('agent:\n  mark: { dne: 1 }\n'), ['2:11: agent.mark.dne: unknown key "dne" (did you mean "done"?)']);
  // A verifier mask over the default agent bits is refused at the mask, saying what to change.
  assert.deepEqual(problems('verifier:\n  mark: { mask: 0xff, valid: 0x10, invalid: 0x20, unlabelled: 0x30, malformed: 0x40 }\n'), [
    "2:17: verifier.mark.mask: 0xff overlaps the agent's default marks (done 0x2, deny 0x4, allow 0x8): set agent.mark to bits outside the mask",
  ]);
  assert.deepEqual(
    problems(
      'agent:\n  mark: { done: 0x1000, deny: 0x2000, allow: 0x4000 }\nverifier:\n  mark: { mask: 0xff, valid: 0x10, invalid: 0x20, unlabelled: 0x30, malformed: 0x40 }\n',
    ),
    [],
  );
});

test('configured bits reach the rules, the egress mark and the labelling mark', () => {
  const marks = { done: 0x10000, deny: 0x20000, allow: 0x40000 };
  const text = renderRestore(
    agentRulePlan(4, { queues: [100], failOpen: false, interfaces: [], destinations: [], ports: [], egressQueue: 101, marks }),
  );
  assert.match(text, /-A LABELWALL-AGENT-OUT -m mark --mark 0x10000\/0x10000 -j RETURN/);
  assert.match(text, /-A LABELWALL-AGENT-OUT -m mark --mark 0x20000\/0x20000 -j RETURN/);
  assert.match(text, /-A LABELWALL-AGENT-OUT -m mark --mark 0x0\/0x60000 -p tcp --syn/);
  assert.match(text, /-A LABELWALL-AGENT-EGRESS -m mark ! --mark 0x20000\/0x20000 -j RETURN/);
  assert.doesNotMatch(text, /--mark 0x(2|4|c)\//);
  assert.equal(egressMark(0x5, 'deny', marks), 0x20005);
  assert.equal(egressMark(0x20005, 'allow', marks), 0x40005);
  const key = LabelKey.fromBytes(Buffer.alloc(32, 3), 'k');
  const syn = buildTcpPacket({
    family: 4,
    src: Uint8Array.of(10, 0, 0, 1),
    dst: Uint8Array.of(10, 0, 0, 2),
    srcPort: 1,
    dstPort: 2,
    seq: 1,
    flags: 0x02,
  });
  const d = decideAgentPacket(compat, NF_INET_LOCAL_OUT, syn, 0x40000, 1500, key, Buffer.alloc(65536), marks);
  assert.equal(d.mark, 0x50000);
});
