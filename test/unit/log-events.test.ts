// Every daemon log record has a stable `event` (docs/logs.md): each log call in src/ names one,
// and docs/logs.md's table lists exactly the events the code uses. Reads the source, so a new
// log call without an event, or an event left out of the docs, fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../src/lab/paths.js';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}
// The lab and the demo drive test peers and print to a terminal; they are not the daemons' log.
const files = sources(join(REPO_ROOT, 'src')).filter((f) => !/\/src\/(lab|demo)\//.test(f));

/** The argument text of a call starting at `open` (the index of its "("), to the matching ")". */
function callText(s: string, open: number): string {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')' && --depth === 0) return s.slice(open, i + 1);
  }
  return s.slice(open);
}

test('every log call of the daemons has an event, and docs/logs.md lists exactly those events', () => {
  const missing: string[] = [];
  const used = new Set<string>();
  let calls = 0;
  for (const f of files) {
    const s = readFileSync(f, 'utf8');
    for (const m of s.matchAll(/\blog\.(trace|debug|info|warn|error|fatal)\(/g)) {
      calls++;
      const args = callText(s, m.index! + m[0].length - 1);
      if (!/\bevent: '/.test(args)) missing.push(`${f.slice(REPO_ROOT.length + 1)}: ${args.slice(0, 80)}`);
    }
    for (const m of s.matchAll(/kind: 'log',/g)) {
      calls++;
      const obj = s.slice(m.index!, m.index! + 300); // the posted record's first lines
      if (!/\bevent: '|\.\.\.(rec|sum)\b/.test(obj)) missing.push(`${f.slice(REPO_ROOT.length + 1)}: ${obj.slice(0, 80)}`);
    }
    for (const m of s.matchAll(/\bevent: '([a-z-]+)'/g)) used.add(m[1]!);
  }
  assert.ok(calls >= 40, `${calls} log calls found`);
  assert.deepEqual(missing, [], 'log calls without an event');
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'logs.md'), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `([a-z-]+)` \|/gm)].map((m) => m[1]!));
  assert.deepEqual([...used].filter((e) => !documented.has(e)).sort(), [], 'events missing from docs/logs.md');
  assert.deepEqual([...documented].filter((e) => !used.has(e)).sort(), [], 'documented events the code does not use');
});
