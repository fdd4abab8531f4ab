// The v1 config keys: keys with ids, tags, profiles, agent.nat, egress rule tags, verifier rule
// tags/allow_nat, epoch window, tag masks; each mistake with its own message at file:line:col.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/messages.js';
import { NAT_DST as CFG_DST, NAT_PORTS as CFG_PORTS, NAT_SRC as CFG_SRC } from '../../src/config/nat.js';
import { NAT_DST, NAT_PORTS, NAT_SRC } from '../../src/label/profile.js';
import { isTagMask, tagOfMark, withTag } from '../../src/config/marks.js';

function problems(text: string): string[] {
  try {
    parseConfig(text, 'v.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems.map((p) => `${p.line}:${p.col}: ${p.path}: ${p.message}`);
  }
  return [];
}

test('the config NAT bits are the label profile NAT bits', () => {
  assert.deepEqual([CFG_SRC, CFG_DST, CFG_PORTS], [NAT_SRC, NAT_DST, NAT_PORTS]);
});

test('every v1 key read from the file, names resolved to numbers', () => {
  const c = parseConfig(
    [
      'keys:',
      '  a: /k/a.key',
      '  b: { file: /k/b.key, id: 3 }',
      'tags:',
      '  web: 300',
      '  ssh: 22',
      'agent:',
      '  profile: v1',
      '  key: b',
      '  mark: { tag_mask: 0xffff0000 }',
      '  nat:',
      '    - destinations: [0.0.0.0/0, "::/0"]',
      '      translated: [source, ports]',
      '  egress:',
      '    rules:',
      '      - { action: allow, tag: web }',
      '      - { action: allow, tag: 7 }',
      '      - { action: allow }',
      'verifier:',
      '  profile: any',
      '  epoch_window: { before: 3, after: 0 }',
      '  mark: { tag_mask: 0xffff0000 }',
      '  rules:',
      '    - { keys: [a, b], tags: [web, 9], allow_nat: [source, destination] }',
      '    - { name: plain }',
    ].join('\n'),
    '/etc/v.yaml',
  );
  assert.deepEqual(c.keys, { a: { file: '/k/a.key', id: 0 }, b: { file: '/k/b.key', id: 3 } });
  assert.deepEqual(c.tags, { web: 300, ssh: 22 });
  assert.equal(c.agent.profile, 'v1');
  assert.equal(c.agent.key, 'b');
  assert.equal(c.agent.tagMask, 0xffff0000);
  assert.deepEqual(
    c.agent.nat.map((n) => [n.destinations.map((d) => d.text), n.nat]),
    [[['0.0.0.0/0', '::/0'], NAT_SRC | NAT_PORTS]],
  );
  assert.deepEqual(
    c.agent.egress.rules.map((r) => r.tag),
    [300, 7, undefined],
  );
  assert.equal(c.verifier.profile, 'any');
  assert.deepEqual(c.verifier.epochWindow, { before: 3, after: 0 });
  assert.deepEqual(c.verifier.rules[0]!.tags, [300, 9]);
  assert.equal(c.verifier.rules[0]!.allowNat, NAT_SRC | NAT_DST);
  assert.equal(c.verifier.rules[1]!.tags, undefined);
  assert.equal(c.verifier.rules[1]!.allowNat, undefined);
});

test('defaults: v1 for both roles, strict NAT, epochs 2 before and 1 after, tag bits 0xffff0000', () => {
  const c = parseConfig('keys:\n  k: /k\n', 'd.yaml');
  assert.equal(c.agent.profile, 'v1');
  assert.equal(c.verifier.profile, 'v1');
  assert.deepEqual(c.agent.nat, []);
  assert.deepEqual(c.verifier.epochWindow, { before: 2, after: 1 });
  assert.equal(c.agent.tagMask, 0xffff0000);
  assert.equal(c.verifier.mark.tagMask, 0xffff0000);
  assert.deepEqual(c.keys.k, { file: '/k', id: 0 });
});

test('tags: unknown names with a suggestion, duplicate numbers, out of range, bad names', () => {
  assert.deepEqual(
    problems(
      'tags:\n  web: 300\n  www: 300\n  "123": 5\n  x: 0\nagent:\n  egress:\n    rules:\n      - { action: allow, tag: wbe }\n      - { action: allow, tag: 70000 }\n      - { action: allow, tag: 0 }\nverifier:\n  rules:\n    - tags: [web, nope]\n',
    ),
    [
      '3:8: tags.www: tag number 300 is already used by tag "web" (a number names one application)',
      '4:3: tags["123"]: invalid name "123": must be a tag name (letters, digits, "_", ".", "-"; not only digits)',
      '5:6: tags.x: must be an integer from 1 to 65535, got 0',
      '9:31: agent.egress.rules[0].tag: tag "wbe" is not defined under tags (did you mean "web"?)',
      '10:31: agent.egress.rules[1].tag: tag number 70000 is out of range: tags are 1-65535 (0 means unclassified)',
      '11:31: agent.egress.rules[2].tag: tag number 0 is out of range: tags are 1-65535 (0 means unclassified)',
      '14:19: verifier.rules[0].tags[1]: tag "nope" is not defined under tags (defined: 123, web, www, x)',
    ],
  );
  assert.deepEqual(problems('agent:\n  egress:\n    rules:\n      - { action: allow, tag: web }\n'), [
    '4:31: agent.egress.rules[0].tag: tag "web" is not defined under tags (the tags section defines none)',
  ]);
  assert.deepEqual(problems('agent:\n  egress:\n    rules:\n      - { action: allow, tag: [1] }\n'), [
    '4:31: agent.egress.rules[0].tag: must be a tag name under tags or a tag number (1-65535), got a list',
  ]);
  assert.deepEqual(problems('tags: { web: 300 }\nverifier:\n  rules:\n    - tags: ["300"]\n'), [
    '4:14: verifier.rules[0].tags[0]: tag "300" is not defined under tags (a quoted number is a name; write 300 without quotes for tag number 300)',
  ]);
});

test('keys: {file, id} entries, id range, unknown keys; the old message for a wrong scalar', () => {
  assert.deepEqual(problems('keys:\n  a: /k\n  b: { file: /k2, id: 9, x: 1 }\n  c: { id: 1 }\n'), [
    '3:23: keys.b.id: must be an integer from 0 to 7, got 9',
    '3:26: keys.b.x: unknown key "x" (did you mean "id"?)',
    '4:6: keys.c: missing required key "file"',
  ]);
  assert.match(problems('keys:\n  main: 12\n')[0]!, /^2:9: keys\.main: must be the path of a key file/);
});

test('key ids unique among the keys a v1 verifier rule accepts; compat and agent-only files not checked', () => {
  // Explicit rule keys.
  assert.deepEqual(problems('keys:\n  a: /k\n  b: /k2\nverifier:\n  rules:\n    - { name: r, keys: [a, b] }\n'), [
    '6:28: verifier.rules[0].keys[1]: key "b" has key id 0, like key "a" (both accepted by verifier rule "r"; a v1 label names its key by id: give each key its own id, { file: PATH, id: 0-7 })',
  ]);
  // No rules: the implicit rule accepts every key.
  assert.deepEqual(problems('keys:\n  a: /k\n  b: { file: /k2 }\nverifier:\n  hook: input\n'), [
    '3:6: keys.b: key "b" has key id 0, like key "a" (the verifier accepts every key; a v1 label names its key by id: give each key its own id, { file: PATH, id: 0-7 })',
  ]);
  assert.deepEqual(problems('keys:\n  a: /k\n  b: { file: /k2, id: 1 }\nverifier:\n  rules:\n    - { keys: [a, b] }\n'), []);
  assert.deepEqual(problems('keys:\n  a: /k\n  b: /k2\nverifier:\n  profile: compat\n'), [], 'compat tries every key: ids unused');
  assert.deepEqual(problems('keys:\n  a: /k\n  b: /k2\nagent:\n  key: a\n'), [], 'an agent-only file');
  // Different rules may reuse an id.
  assert.deepEqual(problems('keys:\n  a: /k\n  b: /k2\nverifier:\n  rules:\n    - { keys: [a] }\n    - { keys: [b] }\n'), []);
});

test('compat has no tags and no NAT modes: a compat verifier rule with tags or allow_nat, a compat agent with nat, are refused', () => {
  assert.deepEqual(
    problems(
      'tags: { web: 300 }\nagent:\n  profile: compat\n  nat:\n    - { destinations: [0.0.0.0/0], translated: [source] }\n  egress:\n    rules:\n      - { action: allow, tag: web }\nverifier:\n  profile: compat\n  rules:\n    - { tags: [web], allow_nat: [source] }\n',
    ),
    [
      '5:5: agent.nat: nat needs profile v1 (profile: compat labels carry no NAT modes)',
      '12:15: verifier.rules[0].tags: tags need profile v1 or any (with profile: compat no label has a tag, so every valid one would be tag-denied)',
      '12:33: verifier.rules[0].allow_nat: allow_nat needs profile v1 or any (profile: compat labels carry no NAT modes)',
    ],
  );
  // The control: the same with v1 (and any for the verifier) is fine; an egress tag is fine with compat (it names flows in the decisions).
  assert.deepEqual(
    problems(
      'tags: { web: 300 }\nagent:\n  profile: v1\n  nat:\n    - { destinations: [0.0.0.0/0], translated: [source] }\nverifier:\n  profile: any\n  rules:\n    - { tags: [web], allow_nat: [source] }\n',
    ),
    [],
  );
});

test('profiles, nat, epoch window and tag masks: each mistake at its value', () => {
  assert.deepEqual(
    problems(
      'agent:\n  profile: v2\n  nat:\n    - destinations: []\n      translated: [ports]\n    - { destinations: [10.1.2.3/8], translated: [source, source] }\n  mark: { tag_mask: 0xff00 }\nverifier:\n  profile: anny\n  epoch_window: { before: 17 }\n  mark: { tag_mask: 0xf000 }\n  rules:\n    - allow_nat: [ports]\n',
    ),
    [
      '2:12: agent.profile: must be one of v1, compat, got "v2" (did you mean "v1"?)',
      '4:21: agent.nat[0].destinations: must list at least one entry',
      '5:19: agent.nat[0].translated: ports needs source or destination too (the P flag only says which ports of a translated address are left out)',
      '6:24: agent.nat[1].destinations[0]: bad CIDR: "10.1.2.3/8" has host bits set (did you mean "10.0.0.0/8"?)',
      '6:49: agent.nat[1].translated: lists the same entry twice (entries 0 and 1)',
      '7:21: agent.mark.tag_mask: 0xff00 is not 16 contiguous bits (a tag is 16 bits; 0 = no tags), e.g. 0xffff0000',
      '9:12: verifier.profile: must be one of v1, compat, any, got "anny" (did you mean "any"?)',
      '10:27: verifier.epoch_window.before: must be an integer from 0 to 16, got 17',
      '11:21: verifier.mark.tag_mask: 0xf000 is not 16 contiguous bits (a tag is 16 bits; 0 = tags not marked), e.g. 0xffff0000',
      '13:18: verifier.rules[0].allow_nat: ports needs source or destination too (the P flag only says which ports of a translated address are left out)',
    ],
  );
  assert.deepEqual(problems('agent:\n  mark: { tag_mask: 0xffff }\n'), [
    '2:21: agent.mark.tag_mask: 0xffff shares bits 0x2 with agent.mark.done (each mark needs bits of its own)',
    "2:21: agent.mark.tag_mask: 0xffff overlaps the verifier's mark mask 0xf00: a verifier on the same host would take the agent's packets as already judged",
  ]);
  assert.deepEqual(problems('verifier:\n  mark: { tag_mask: 0xffff00 }\n'), [
    '2:21: verifier.mark.tag_mask: 0xffff00 overlaps the mask 0xf00 (the verdict bits)',
  ]);
  assert.deepEqual(problems('agent:\n  mark: { tag_mask: 0 }\nverifier:\n  mark: { tag_mask: 0 }\n'), [], '0 = off');
  // A custom verdict mask over the default tag bits: refused only where the tag goes into the mark.
  const m = 'mark: { mask: 0xf0000, valid: 0x10000, invalid: 0x20000, unlabelled: 0x30000, malformed: 0x40000 }';
  assert.deepEqual(problems(`verifier:\n  action: log\n  ${m}\n`), []);
  assert.deepEqual(problems(`verifier:\n  action: mark\n  ${m}\n`), [
    '3:17: verifier.mark.mask: 0xf0000 overlaps the default tag_mask 0xffff0000: set verifier.mark.tag_mask to other bits (or 0)',
  ]);
});

test('tag bits in a mark: written and read under the mask, other bits kept', () => {
  assert.ok(isTagMask(0xffff0000) && isTagMask(0xffff) && isTagMask(0xffff00));
  assert.ok(!isTagMask(0xff00) && !isTagMask(0) && !isTagMask(0xfffff));
  assert.equal(withTag(0x10a, 300, 0xffff0000), ((300 << 16) | 0x10a) >>> 0);
  assert.equal(tagOfMark(withTag(0x10a, 65535, 0xffff0000), 0xffff0000), 65535);
  assert.equal(tagOfMark(withTag(0xff, 300, 0xffff00), 0xffff00), 300);
  assert.equal(withTag(0x8, 300, 0), 0x8, 'mask 0: no tag');
  assert.equal(tagOfMark(0xffffffff, 0), 0);
});
