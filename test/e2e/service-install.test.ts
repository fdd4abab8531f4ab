// `make install` into a clean temporary prefix, then the *installed* labelwall run the way its
// systemd units run it: the ExecStart command lines parsed from the installed unit files, in the
// namespaces of the standard topology on real HTTP traffic, started like Type=notify (the test
// waits for READY=1 on its own NOTIFY_SOCKET), reloaded with the units' ExecReload, stopped with
// SIGTERM as `systemctl stop` does. PID 1 here is not systemd, so the units' sandbox is
// reproduced where Linux offers the same mechanism: the capability bounding set of the unit
// (setpriv), NoNewPrivileges, ProtectSystem=strict (every mount read-only but the
// RuntimeDirectory), ProtectHome, read-only /proc/sys and cgroup (ProtectKernelTunables,
// ProtectControlGroups). Then `make uninstall` removes the rules a killed agent left and leaves
// nothing but the key and the changed config, and an untouched install leaves nothing at all.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync, lstatSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { makeTempDir } from '../../src/lab/tmp.js';
import { controlGet } from '../../src/control/client.js';
import type { StatusReport } from '../../src/daemon/run.js';
import { labelwallRules } from '../../src/lab/labelwall.js';
import { createTopology, run, standardTopology, waitFor, type NsProcess, type Topology } from '../../src/lab/netns.js';
import { PYTHON, REPO_ROOT } from '../../src/lab/paths.js';
import { httpRequests, startHttpServer, type HttpServer } from '../../src/lab/http.js';
import { testPeer } from '../helpers/paths.js';
import { startPrometheus } from '../../src/lab/prometheus.js';

const METRICS_PORT = 9464;

/** Every path under `root`, relative, sorted. */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      out.push(relative(root, p));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out.sort();
}

/** One `Key=value` of a unit file's [Service] section (the last one wins, as in systemd). */
function unitValue(unit: string, key: string): string {
  const v = unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1))
    .pop();
  assert.ok(v !== undefined, `unit has ${key}=`);
  return v;
}

/** CapabilityBoundingSet=CAP_A CAP_B → setpriv's "-all,+a,+b". */
function boundingSet(unit: string): string {
  return [
    '-all',
    ...unitValue(unit, 'CapabilityBoundingSet')
      .split(/\s+/)
      .map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`),
  ].join(',');
}

/**
 * The unit's sandbox, as far as it can be reproduced without systemd (see the header), around
 * its command line: run inside `ip netns exec` (its own mount namespace, slave to the host's).
 */
function sandboxed(unit: string, argv: string[]): string[] {
  assert.equal(unitValue(unit, 'ProtectSystem'), 'strict');
  assert.equal(unitValue(unit, 'NoNewPrivileges'), 'yes');
  assert.equal(unitValue(unit, 'RuntimeDirectory'), 'labelwall');
  const rw = unitValue(unit, 'ReadWritePaths')
    .split(/\s+/)
    .map((p) => p.replace(/^-/, ''))
    .join('|');
  const script = [
    'set -e',
    // ip netns exec mounted a fresh /sys without the cgroup2 hierarchy; systemd's services see it (read-only).
    'mount -t cgroup2 -o ro none /sys/fs/cgroup',
    'mkdir -p /run/labelwall && mount --bind /run/labelwall /run/labelwall',
    // ReadWritePaths= (a leading '-': only when it exists)
    ...unitValue(unit, 'ReadWritePaths')
      .split(/\s+/)
      .map((p) => `[ -e ${p.replace(/^-/, '')} ] && mount --bind ${p.replace(/^-/, '')} ${p.replace(/^-/, '')}`),
    'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys',
    // ProtectSystem=strict: every other mount read-only (the API file systems /proc, /sys, /dev stay).
    `for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do case $m in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/run/labelwall|${rw}) ;; *) mount -o remount,bind,ro "$m" 2>/dev/null || true ;; esac; done`,
    // ProtectHome=yes
    'for h in /home /root; do [ -d $h ] && mount -t tmpfs -o ro,mode=0 tmpfs $h; done',
    'touch /usr/.lw-rw-probe 2>/dev/null && { echo "sandbox: / is still writable" >&2; exit 97; }',
    `exec setpriv --bounding-set ${boundingSet(unit)} --inh-caps -all --no-new-privs -- "$@"`,
  ].join('\n');
  return ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sandbox', ...argv];
}

describe('make install: the installed labelwall under its units, on real traffic; make uninstall', { timeout: 150_000 }, () => {
  let root: string;
  const roots: string[] = [];
  const varsFor = (r: string): string[] => [`PREFIX=${r}/usr`, `SYSCONFDIR=${r}/etc`, `WIRESHARK_PLUGIN_DIR=${r}/wireshark/plugins`];
  let topo: Topology;
  let http: HttpServer;
  const procs: NsProcess[] = [];

  before(async () => {
    topo = await createTopology(standardTopology({ subnetBase: 242 }));
    http = await startHttpServer(topo, 'srv', { bind: '::', port: 8080 });
  });
  after(async () => {
    for (const p of procs) await p.stop(3000);
    await topo?.destroy();
    for (const r of roots) await run(['make', '-s', '-C', REPO_ROOT, 'uninstall', ...varsFor(r)]);
  });

  /** `make install` with the test's directories; `-o build`: dist/ is built already (the test runs from it). */
  const make = (target: 'install' | 'uninstall') =>
    run(['make', '-s', '-C', REPO_ROOT, '-o', 'build', target, ...varsFor(root)], { check: true, timeoutMs: 120_000 });
  /** A fresh, empty directory for each test's prefix and config directory. */
  const freshRoot = (): void => {
    root = makeTempDir('lw-install-');
    roots.push(root);
  };

  test('install, run the units command lines in namespaces, reload, crash and restart, stop, uninstall', async () => {
    freshRoot();
    await make('install');
    const usr = join(root, 'usr');
    const lib = join(usr, 'lib', 'labelwall');
    const conf = join(root, 'etc', 'labelwall');
    // labelwall on PATH, the product only: no tests, no lab, no demo, no development dependencies.
    assert.equal(readlinkSync(join(usr, 'bin', 'labelwall')), join(lib, 'bin', 'labelwall'));
    assert.ok(existsSync(join(lib, 'dist', 'src', 'cli', 'main.js')));
    for (const absent of [
      'dist/test',
      'dist/src/demo',
      'dist/src/lab',
      'lab',
      'test',
      'node_modules/typescript',
      'node_modules/@biomejs',
      'node_modules/fast-check',
      'node_modules/@types',
    ])
      assert.ok(!existsSync(join(lib, absent)), `${absent} is not installed`);
    for (const dep of Object.keys(JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).dependencies as object))
      assert.ok(existsSync(join(lib, 'node_modules', dep)), `production dependency ${dep} installed`);
    assert.ok(existsSync(join(root, 'wireshark', 'plugins', 'labelwall.lua')));
    assert.equal(statSync(conf).mode & 0o777, 0o700);
    assert.equal(statSync(join(conf, 'labelwall.yaml')).mode & 0o777, 0o600);
    const units = Object.fromEntries(
      ['agent', 'verifier'].map((r) => [r, readFileSync(join(usr, 'lib', 'systemd', 'system', `labelwall-${r}.service`), 'utf8')]),
    ) as Record<'agent' | 'verifier', string>;
    const verify = await run([
      'systemd-analyze',
      'verify',
      ...['agent', 'verifier', 'verifier@blue'].map((u) => join(usr, 'lib', 'systemd', 'system', `labelwall-${u}.service`)),
    ]);
    assert.equal(verify.code, 0, `systemd-analyze verify:\n${verify.stderr}`);

    // The first key and config, as README's "Deployment" does it, with the installed labelwall.
    const bin = join(usr, 'bin', 'labelwall');
    await run([bin, 'keygen', '--out', join(conf, 'site.key')], { check: true });
    const example = readFileSync(join(conf, 'labelwall.yaml'), 'utf8');
    assert.match(example, /site: site\.key/);
    writeFileSync(
      join(conf, 'labelwall.yaml'),
      example.replace(
        '  # rules:\n  #   - { name: clients, in_interfaces: [eth1], keys: [site], action: drop }',
        `  rules:\n    - { name: clients, in_interfaces: [${topo.iface('mb', 'pc').name}, ${topo.iface('mb', 'uc').name}], keys: [site], action: drop }`,
      ),
    );
    assert.notEqual(readFileSync(join(conf, 'labelwall.yaml'), 'utf8'), example, 'the verifier rule was filled in');
    // /metrics on TCP for Prometheus: the agent (pc) and the verifier (mb) read this one file, each
    // in its own namespace, so one port serves both; all addresses, so mb can scrape pc.
    writeFileSync(
      join(conf, 'labelwall.yaml'),
      readFileSync(join(conf, 'labelwall.yaml'), 'utf8').replace(
        '# metrics:\n#   listen: 9464',
        `metrics:\n  listen: "0.0.0.0:${METRICS_PORT}"`,
      ),
    );
    assert.match(readFileSync(join(conf, 'labelwall.yaml'), 'utf8'), /^metrics:\n {2}listen: "0\.0\.0\.0:9464"$/m);

    // A host without the iptables tools: a clear refusal before anything is touched.
    const noTools = await topo.exec(
      'pc',
      [process.execPath, join(lib, 'bin', 'labelwall'), 'agent', '--config', join(conf, 'labelwall.yaml')],
      {
        env: { PATH: '/usr/bin:/bin' },
      },
    );
    assert.equal(noTools.code, 1);
    assert.match(
      noTools.stderr,
      /iptables, iptables-restore, ip6tables, ip6tables-restore not found on PATH \(\/usr\/bin:\/bin\): install the Debian package iptables/,
    );
    assert.deepEqual(await labelwallRules(topo, 'pc'), []);

    /** Starts a role as its unit does and waits for READY=1, as systemd does for Type=notify. */
    const start = async (role: 'agent' | 'verifier', host: string): Promise<{ proc: NsProcess; notes: NsProcess }> => {
      const argv = unitValue(units[role], 'ExecStart').split(/\s+/);
      assert.deepEqual(argv.slice(0, 2), [bin, role]);
      const addr = join(root, `notify-${role}`);
      rmSync(addr, { force: true });
      const notes = topo.spawn(host, [PYTHON, testPeer('notify_listener.py'), addr]);
      procs.push(notes);
      await notes.waitForOutput(/"listening"/, 10_000);
      // ExecStartPre=+...: '+' runs it without the sandbox.
      await run(
        unitValue(units[role], 'ExecStartPre')
          .replace(/^[-+!]+/, '')
          .split(/\s+/),
        { check: true },
      );
      const proc = topo.spawn(host, sandboxed(units[role], argv), { env: { ...process.env, NOTIFY_SOCKET: addr } });
      procs.push(proc);
      await waitFor(
        () => {
          if (!proc.running) throw new Error(`${role} exited:\n${proc.describe()}`);
          return /READY=1/.test(notes.stdout);
        },
        30_000,
        { what: `${role}: READY=1`, intervalMs: 100 },
      );
      return { proc, notes };
    };
    const status = async (role: string): Promise<StatusReport> =>
      JSON.parse(await controlGet(`/run/labelwall/${role}.sock`, '/status')) as StatusReport;

    const verifier = await start('verifier', 'mb');
    let agent = await start('agent', 'pc');
    const agentLog = (): string => agent.proc.stderr;
    assert.match(agentLog(), /egress attribution with eBPF socket tracking/, 'eBPF socket tracking loads inside the bounding set');

    // Real traffic: pc's requests are labelled and pass; uc's are unlabelled and dropped at mb.
    const url = http.url(topo.addr('srv'));
    const fromPc = await httpRequests(topo, 'pc', url, [{ method: 'GET', path: '/blob/100000' }]);
    assert.equal(fromPc[0]?.status, 200, fromPc[0]?.error);
    assert.equal(fromPc[0]?.body.length, 100_000);
    const fromUc = await httpRequests(topo, 'uc', url, [{ method: 'GET', path: '/blob/100000', timeoutSec: 2 }]);
    assert.equal(fromUc[0]?.status, null, 'unlabelled traffic is dropped');
    const v = await status('verifier');
    assert.ok((v.counters.valid ?? 0) > 0 && (v.counters.unlabelled ?? 0) > 0, JSON.stringify(v.counters));
    const a = await status('agent');
    assert.ok((a.counters.labelled ?? 0) > 0 && (a.counters.egress_allowed ?? 0) > 0, JSON.stringify(a.counters));
    // Attributed to the client process (root's python: /proc/PID/fd and exe need CAP_SYS_PTRACE).
    const decision = agentLog()
      .split('\n')
      .filter((l) => l.includes('"msg":"egress decision"'))
      .map((l) => JSON.parse(l) as { unknown: boolean; holders: Array<{ exe?: string; sha256?: string }> })
      .find((d) => d.holders?.some((h) => /python/.test(h.exe ?? '')));
    assert.ok(
      decision && !decision.unknown && decision.holders.some((h) => h.sha256),
      `an attributed, hashed egress decision:\n${agentLog().slice(-3000)}`,
    );
    // Prometheus (Debian's) in mb scrapes both installed daemons (metrics.listen of the installed
    // config); its HTTP API returns the counters of the traffic above.
    const promDir = makeTempDir('lw-install-prom-'); // not under root: that must end up empty
    const prom = await startPrometheus(topo, 'mb', promDir, {
      'labelwall-verifier': `127.0.0.1:${METRICS_PORT}`,
      'labelwall-agent': `${topo.addr('pc', 4, 'mb')}:${METRICS_PORT}`,
    });
    procs.push(prom.proc);
    const validNow = (await status('verifier')).counters.valid ?? 0;
    await waitFor(
      async () => {
        const [vv] = await prom.query('labelwall_verdicts_total{job="labelwall-verifier",verdict="valid"}');
        const [al] = await prom.query('labelwall_packets_total{job="labelwall-agent",outcome="labelled"}');
        return vv && al && Number(vv.value[1]) >= validNow && validNow > 0 && Number(al.value[1]) > 0;
      },
      20_000,
      { what: "Prometheus has the installed daemons' counters of that traffic", intervalMs: 500 },
    );
    const [unl] = await prom.query('labelwall_verdicts_total{job="labelwall-verifier",verdict="unlabelled"}');
    assert.ok(Number(unl?.value[1]) > 0, "uc's dropped requests as unlabelled, in Prometheus");
    await prom.stop();
    rmSync(promDir, { recursive: true, force: true });

    // The installed `labelwall ui` serves its page and libraries (no lab, no build step) for the token only.
    const ui = topo.spawn('pc', [bin, 'ui', '--listen', '127.0.0.1:18555', '--control-socket', '/run/labelwall/agent.sock']);
    procs.push(ui);
    await ui.waitForOutput(/open http:\/\/127\.0\.0\.1:18555\/\?token=/, 10_000);
    const token = /token=([A-Za-z0-9_-]+)/.exec(ui.stdout)![1]!;
    const get = async (path: string, withToken: boolean): Promise<string> =>
      (
        await topo.exec('pc', [
          'curl',
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          ...(withToken ? ['-H', `Authorization: Bearer ${token}`] : []),
          `http://127.0.0.1:18555${path}`,
        ])
      ).stdout;
    assert.equal(await get('/', true), '200', 'the installed ui serves its page');
    assert.equal(await get('/vendor/preact.mjs', true), '200', 'and its libraries from the installed node_modules');
    assert.equal(await get('/', false), '401', 'not without the token');
    await ui.stop(3000);

    // ExecReload=/bin/kill -HUP $MAINPID: RELOADING=1, then READY=1 again.
    const reload = unitValue(units.agent, 'ExecReload').replace('$MAINPID', String(agent.proc.pid)).split(/\s+/);
    const seen = agent.notes.stdout.length;
    await run(reload, { check: true });
    await waitFor(() => /RELOADING=1[\s\S]*READY=1/.test(agent.notes.stdout.slice(seen)), 10_000, {
      what: 'agent: RELOADING=1, then READY=1',
    });

    // A crash (Restart=on-failure): the fail-closed rules stay while it is down, the restart takes over.
    agent.proc.signal('SIGKILL');
    await agent.proc.exited;
    assert.ok((await labelwallRules(topo, 'pc')).length > 0, 'fail-closed rules kept while the agent is down');
    agent = await start('agent', 'pc');
    assert.match(agentLog(), /replaced the iptables state left by an earlier run/);
    const again = await httpRequests(topo, 'pc', url, [{ method: 'GET', path: '/blob/100000' }]);
    assert.equal(again[0]?.status, 200, again[0]?.error);

    // systemctl stop (KillMode=mixed: SIGTERM to the main process): STOPPING=1, rules removed, exit 0.
    for (const [d, host] of [
      [agent, 'pc'],
      [verifier, 'mb'],
    ] as const) {
      d.proc.signal('SIGTERM');
      const { code } = await d.proc.exited;
      assert.equal(code, 0, d.proc.describe());
      assert.match(d.notes.stdout, /STOPPING=1/);
      assert.deepEqual(await labelwallRules(topo, host), []);
    }

    // A killed agent's fail-closed rules: make uninstall (in pc's namespace, as on that host) runs
    // labelwall cleanup before the program goes, else nothing would remove them.
    agent = await start('agent', 'pc');
    agent.proc.signal('SIGKILL');
    await agent.proc.exited;
    assert.ok(
      (await labelwallRules(topo, 'pc')).some((l) => /LABELWALL-AGENT-/.test(l)),
      'the control: the killed agent left its rules',
    );
    // make uninstall: what the administrator wrote stays (the key, the changed config), nothing else.
    const uninstall = await topo.exec('pc', ['make', '-s', '-C', REPO_ROOT, '-o', 'build', 'uninstall', ...varsFor(root)], {
      check: true,
      timeoutMs: 120_000,
    });
    assert.match(uninstall.stdout, /removed [1-9]\d* labelwall chain\(s\) and jump\(s\)/, uninstall.stdout + uninstall.stderr);
    assert.deepEqual(await labelwallRules(topo, 'pc'), []);
    assert.deepEqual(
      tree(root).filter((p) => !p.startsWith('notify-')),
      ['etc', 'etc/labelwall', 'etc/labelwall/labelwall.yaml', 'etc/labelwall/site.key'],
    );
  });

  test('install twice (idempotent), uninstall: nothing left, not even the directories it made', async () => {
    freshRoot();
    await make('install');
    const first = tree(root);
    const manifest = readFileSync(join(root, 'usr', 'lib', 'labelwall', 'install-manifest'), 'utf8');
    await make('install');
    assert.deepEqual(tree(root), first, 'a second install changes no path');
    assert.equal(readFileSync(join(root, 'usr', 'lib', 'labelwall', 'install-manifest'), 'utf8'), manifest);
    assert.ok(lstatSync(join(root, 'usr', 'bin', 'labelwall')).isSymbolicLink());
    await make('uninstall');
    assert.deepEqual(tree(root), []);
  });
});
