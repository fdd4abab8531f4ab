// The config's one definition (src/config/schema.ts, TypeBox) must compile to the plain JSON
// schema that messages.ts words errors for: a TypeBox union would compile to anyOf, whose ajv
// errors read differently, so this fails if one slips in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../../src/config/schema.js';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/messages.js';

function walk(node: unknown, path: string, visit: (n: Record<string, unknown>, path: string) => void): void {
  if (node === null || typeof node !== 'object') return;
  visit(node as Record<string, unknown>, path);
  for (const [k, v] of Object.entries(node)) walk(v, `${path}/${k}`, visit);
}

test('config schema: no anyOf/oneOf/const nodes, every mapping closed', () => {
  const plain = JSON.parse(JSON.stringify(configSchema)) as unknown;
  const found: string[] = [];
  let mappings = 0;
  walk(plain, '', (n, path) => {
    for (const k of ['anyOf', 'oneOf', 'allOf', 'const', 'patternProperties']) if (k in n) found.push(`${path}: ${k}`);
    if (n.type === 'object' && 'properties' in n) {
      mappings++;
      if (n.additionalProperties !== false) found.push(`${path}: additionalProperties is not false`);
    }
  });
  assert.deepEqual(found, []);
  assert.ok(mappings >= 15, `walked ${mappings} mappings`);
});

test('config schema: a union-typed value keeps its one-line hint (control: the message names the hint)', () => {
  try {
    parseConfig('agent:\n  label:\n    ports: [true]\n', 'c.yaml');
    assert.fail('accepted');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.message, 'c.yaml:3:13: agent.label.ports[0]: must be a port (1-65535) or a range "LOW-HIGH", got true');
  }
});
