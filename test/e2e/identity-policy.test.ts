// Attribution of real processes feeding the egress decision: different executables to the same
// destination (TCP, UDP, ICMP), a renamed copy caught by its hash, holders any/all on an
// inherited socket.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EgressPolicy } from '../../src/config/model.js';
import { parseConfig } from '../../src/config/load.js';
import { decideEgress } from '../../src/policy/egress.js';
import type { FlowTuple } from '../../src/identity/types.js';
import { createNs, deleteNs, scenario, startServer, Probe, type LineProc } from './identity-harness.js';

const realPython = realpathSync('/usr/bin/python3');
const realHash = createHash('sha256').update(readFileSync(realPython)).digest('hex');
let ns = '';
let dir = '';
let renamed = '';
let server: LineProc | undefined;
let probe: Probe | undefined;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lw-identity-'));
  renamed = join(dir, 'innocent-tool');
  copyFileSync(realPython, renamed);
  ns = createNs();
  server = await startServer(ns);
  probe = await Probe.start(ns, ['--bpf', 'auto']);
});

after(async () => {
  await probe?.stop();
  await server?.stop();
  deleteNs(ns);
  rmSync(dir, { recursive: true, force: true });
});

function policy(yaml: string): EgressPolicy {
  return parseConfig(`agent:\n  egress:\n${yaml.replace(/^/gm, '    ')}\n`, 'test.yaml').agent.egress;
}

const flowOf = (t: FlowTuple) => ({ family: t.family, proto: t.proto, dst: t.dst, dport: t.dport });

async function decide(p: EgressPolicy, name: string, python: string): Promise<{ action: string; rule: string; exes: string[] }> {
  const s = await scenario(ns, name, python);
  try {
    const a = await probe!.attribute(s.tuple);
    assert.equal(a.unknown, false, `${name} with ${python}: ${a.reason ?? ''}`);
    const d = decideEgress(p, flowOf(s.tuple), a);
    return { action: d.action, rule: d.rule, exes: a.holders.map((h) => h.exe).sort() };
  } finally {
    await s.proc.stop();
  }
}

test('two executables, same destination: python denied by exe path, its renamed copy allowed (TCP, UDP, ICMP)', async () => {
  const p = policy(`default: allow
rules:
  - name: no-python
    app: { exe: "/usr/bin/python3*" }
    action: deny`);
  for (const name of ['tcp4', 'udp-connected', 'ping4']) {
    const real = await decide(p, name, '/usr/bin/python3');
    assert.deepEqual(real, { action: 'deny', rule: 'no-python', exes: [realPython] }, name);
    const copy = await decide(p, name, renamed);
    assert.deepEqual(copy, { action: 'allow', rule: 'default', exes: [renamed] }, name);
  }
});

test('a rule by exe hash stops the renamed copy too', async () => {
  const p = policy(`default: allow
rules:
  - name: no-python-by-hash
    app: { sha256: "${realHash}" }
    action: deny`);
  for (const name of ['tcp4', 'udp-unconnected', 'ping6']) {
    assert.equal((await decide(p, name, renamed)).rule, 'no-python-by-hash', name);
  }
});

test('inherited socket with two different executables: holders any matches, holders all does not', async () => {
  // The parent is the renamed copy; the child it execs is /usr/bin/python3 and connects.
  const anyP = policy(`default: deny
rules:
  - { name: python-any, app: { exe: "/usr/bin/python3*", holders: any }, action: allow }`);
  const allP = policy(`default: deny
rules:
  - { name: python-all, app: { exe: "/usr/bin/python3*", holders: all }, action: allow }`);
  const a = await decide(anyP, 'inherit-exec', renamed);
  assert.deepEqual(a.exes, [realPython, renamed].sort());
  assert.equal(a.rule, 'python-any');
  assert.equal(a.action, 'allow');
  const b = await decide(allP, 'inherit-exec', renamed);
  assert.equal(b.rule, 'default');
  assert.equal(b.action, 'deny');
});
