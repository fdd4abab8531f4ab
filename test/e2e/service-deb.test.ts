// `make deb`, then the package installed and removed for real with dpkg -i / dpkg -r on this
// host: its files, the example config in /etc/labelwall (0700) only when none exists, the
// Wireshark dissector where this tshark finds it (`tshark -G plugins`), a working
// /usr/bin/labelwall, every program of the units' Exec lines provided by Depends; after dpkg -r
// nothing of it is left (every path it brought that did not exist before, /etc/labelwall),
// while a config the administrator changed stays until dpkg --purge (the keys stay even then);
// dpkg -r removes the iptables rules a killed (fail-closed) agent left, which would otherwise
// outlive the program.
// Refuses to run where labelwall is installed already, or /etc/labelwall or /var/log/labelwall
// exists (never touches those).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTopology, run, standardTopology } from '../../src/lab/netns.js';
import { REPO_ROOT } from '../../src/lab/paths.js';
import { labelwallRules, startDaemon, writeKey } from '../../src/lab/labelwall.js';
import { makeTempDir } from '../../src/lab/tmp.js';

const CONF = '/etc/labelwall';
const LOGS = '/var/log/labelwall';
/** dpkg-query's -f=${FIELD} (a literal "${", not a placeholder). */
const field = (name: string): string => `-f=$\{${name}}`;

/** The programs of a unit's Exec*= lines (ExecStart, ExecStartPre, ExecReload, ...), without the +-!@: prefixes. */
function unitPrograms(unit: string): string[] {
  return unit
    .split('\n')
    .filter((l) => /^Exec[A-Za-z]+=/.test(l))
    .map(
      (l) =>
        l
          .slice(l.indexOf('=') + 1)
          .trim()
          .replace(/^[-+!@:]+/, '')
          .split(/\s+/)[0]!,
    );
}

/** Packages named in a Depends field ("a (>= 1), b | c" → a, b, c). */
function dependsOn(field: string): Set<string> {
  return new Set(
    field
      .split(/[,|]/)
      .map((d) => d.trim().split(/[\s(:]/)[0]!)
      .filter(Boolean),
  );
}

/** The programs whose owner (program → package, from dpkg -S) is neither depended on, Essential, nor labelwall. */
function unprovided(owners: Map<string, string>, depends: Set<string>, essential: Set<string>): string[] {
  return [...owners].filter(([, pkg]) => pkg !== 'labelwall' && !depends.has(pkg) && !essential.has(pkg)).map(([p]) => p);
}

async function installed(): Promise<boolean> {
  const r = await run(['dpkg-query', '-W', field('Status'), 'labelwall']);
  return r.code === 0 && /install ok installed/.test(r.stdout);
}

describe('make deb: dpkg -i and dpkg -r leave nothing behind', { timeout: 240_000 }, () => {
  let deb: string;
  let paths: string[];
  let existedBefore: Set<string>;
  let ours = false;

  before(async () => {
    assert.ok(!(await installed()), 'labelwall is not installed as a package on this host (the test would replace it)');
    assert.ok(!existsSync(CONF), `${CONF} does not exist (the test would write there)`);
    assert.ok(!existsSync(LOGS), `${LOGS} does not exist (a purge removes it)`);
    ours = true;
    const r = await run(['make', '-s', '-C', REPO_ROOT, '-o', 'build', 'deb'], { check: true, timeoutMs: 120_000 });
    deb = join(REPO_ROOT, r.stdout.trim().split('\n').pop()!);
    const list = await run(['dpkg-deb', '-c', deb], { check: true });
    // "drwxr-xr-x root/root 0 2026-12-02 07:10 ./usr/bin/labelwall -> /usr/lib/..."
    paths = list.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(/\s+/).slice(5).join(' ').split(' -> ')[0]!.replace(/^\./, '').replace(/\/$/, ''))
      .filter((p) => p !== '');
    existedBefore = new Set(paths.filter((p) => existsSync(p)));
  });
  after(async () => {
    if (!ours) return;
    if (await installed()) await run(['dpkg', '-r', 'labelwall']);
    await run(['dpkg', '--purge', 'labelwall']);
    rmSync(CONF, { recursive: true, force: true });
    rmSync(LOGS, { recursive: true, force: true });
  });

  const left = (): string[] => [...paths.filter((p) => !existedBefore.has(p) && existsSync(p)), ...(existsSync(CONF) ? [CONF] : [])];

  test('install: files, config 0600 in a 0700 directory, the dissector found by tshark; remove: nothing left', async () => {
    assert.ok(paths.includes('/usr/bin/labelwall') && paths.includes('/lib/systemd/system/labelwall-agent.service'));
    const dissector = paths.find((p) => p.endsWith('/wireshark/plugins/labelwall.lua'));
    assert.ok(dissector);
    await run(['dpkg', '-i', deb], { check: true, timeoutMs: 60_000 });
    assert.ok(await installed());
    assert.equal(statSync(CONF).mode & 0o777, 0o700);
    assert.equal(statSync(join(CONF, 'labelwall.yaml')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(CONF, 'labelwall.yaml'), 'utf8'), readFileSync(join(REPO_ROOT, 'packaging', 'labelwall.yaml'), 'utf8'));
    const version = await run(['/usr/bin/labelwall', '--version'], { check: true });
    assert.match(version.stdout, /^\d+\.\d+\.\d+/);
    const plugins = await run(['tshark', '-G', 'plugins'], { check: true });
    assert.ok(plugins.stdout.includes(dissector), `tshark loads ${dissector}:\n${plugins.stdout}`);
    const verify = await run([
      'systemd-analyze',
      'verify',
      '/lib/systemd/system/labelwall-agent.service',
      '/lib/systemd/system/labelwall-verifier.service',
    ]);
    assert.equal(verify.code, 0, verify.stderr);
    // Every program the units run is on the host once the package is: shipped at that very path
    // (dpkg -S) by labelwall, a package it depends on, or an Essential one.
    const owners = new Map<string, string>();
    for (const unit of ['labelwall-agent.service', 'labelwall-verifier.service', 'labelwall-verifier@.service'])
      for (const program of unitPrograms(readFileSync(join('/lib/systemd/system', unit), 'utf8'))) {
        assert.ok(program.startsWith('/'), `${unit}: ${program} is an absolute path`);
        const r = await run(['dpkg', '-S', program]);
        assert.equal(r.code, 0, `${unit}: ${program} is a path a package ships (dpkg -S): ${r.stderr}`);
        owners.set(program, r.stdout.split(': ')[0]!.split(',')[0]!.trim());
      }
    assert.deepEqual([...owners.keys()].sort(), ['/bin/kill', '/bin/touch', '/usr/bin/labelwall']);
    const depends = dependsOn((await run(['dpkg-deb', '-f', deb, 'Depends'], { check: true })).stdout);
    const essential = new Set<string>();
    for (const pkg of new Set(owners.values())) {
      const e = await run(['dpkg-query', '-W', field('Essential'), pkg]);
      if (e.stdout.trim() === 'yes') essential.add(pkg);
    }
    assert.deepEqual(unprovided(owners, depends, essential), []);
    // The control: without procps in Depends, ExecReload's /bin/kill is not provided.
    assert.deepEqual(unprovided(owners, new Set([...depends].filter((d) => d !== 'procps')), essential), ['/bin/kill']);
    assert.ok(left().length > 10, 'the control: installed files are seen by the check');

    await run(['dpkg', '-r', 'labelwall'], { check: true, timeoutMs: 60_000 });
    assert.ok(!(await installed()));
    assert.deepEqual(left(), []);
    // dpkg keeps the name of a removed package that has a postrm ("rc": config-files) until a
    // purge runs it again; no file of it is left. The purge finds nothing to remove either.
    const status = await run(['dpkg-query', '-W', field('db:Status-Abbrev'), 'labelwall']);
    assert.match(status.stdout, /^rc/);
    await run(['dpkg', '--purge', 'labelwall'], { check: true });
    assert.deepEqual(left(), []);
    const purged = await run(['dpkg-query', '-W', field('db:Status-Abbrev'), 'labelwall']);
    assert.ok(purged.code !== 0 || /^un/.test(purged.stdout), purged.stdout);
  });

  test("dpkg -r removes the rules of a killed agent (fail-closed), in dpkg's network namespace", async () => {
    await run(['dpkg', '-i', deb], { check: true, timeoutMs: 60_000 });
    const topo = await createTopology(standardTopology({ subnetBase: 244 }));
    const dir = makeTempDir('lw-deb-');
    try {
      const key = writeKey(dir, 'site');
      const agent = await startDaemon(topo, 'pc', 'agent', ['--profile', 'v1', '--key-file', key.path, '--no-egress'], dir);
      agent.proc.signal('SIGKILL');
      await agent.proc.exited;
      // The control: the killed agent's rules are there for dpkg -r to remove (and for the check to see).
      assert.ok(
        (await labelwallRules(topo, 'pc')).some((l) => /LABELWALL-AGENT-/.test(l)),
        'the killed agent left its rules',
      );
      const removed = await topo.exec('pc', ['dpkg', '-r', 'labelwall'], { check: true, timeoutMs: 60_000 });
      assert.match(removed.stdout, /removed [1-9]\d* labelwall chain\(s\) and jump\(s\)/, removed.stdout + removed.stderr);
      assert.deepEqual(await labelwallRules(topo, 'pc'), []);
      assert.ok(!(await installed()));
    } finally {
      await topo.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a changed config and a key stay after dpkg -r and a reinstall; dpkg --purge removes the config and the logs, not the key', async () => {
    await run(['dpkg', '-i', deb], { check: true, timeoutMs: 60_000 });
    appendFileSync(join(CONF, 'labelwall.yaml'), '# changed\n');
    const changed = readFileSync(join(CONF, 'labelwall.yaml'), 'utf8');
    await run(['/usr/bin/labelwall', 'keygen', '--out', join(CONF, 'site.key')], { check: true });
    await run(['dpkg', '-i', deb], { check: true, timeoutMs: 60_000 });
    assert.equal(readFileSync(join(CONF, 'labelwall.yaml'), 'utf8'), changed, 'a reinstall keeps the config');
    await run(['dpkg', '-r', 'labelwall'], { check: true, timeoutMs: 60_000 });
    assert.deepEqual(left(), [CONF]);
    assert.equal(readFileSync(join(CONF, 'labelwall.yaml'), 'utf8'), changed);
    assert.ok(existsSync(join(CONF, 'site.key')));
    // A log file of log.file under LogsDirectory= (systemd made the directory for the unit).
    mkdirSync(LOGS, { mode: 0o700 });
    writeFileSync(join(LOGS, 'agent.log'), '{"msg":"started"}\n');
    const purge = await run(['dpkg', '--purge', 'labelwall'], { check: true, timeoutMs: 60_000 });
    assert.deepEqual(readdirSync(CONF), ['site.key'], 'purge: the changed config is gone, the key stays');
    assert.ok(!existsSync(LOGS), 'purge: the logs are gone');
    assert.match(purge.stderr, /kept \/etc\/labelwall: it holds site\.key/);
    assert.deepEqual(left(), [CONF]);
  });
});
