// `labelwall demo`: the whole system on real traffic, in namespaces it builds and removes.
//   pc  (protected client, runs `labelwall agent`)   ─┐
//   uc  (unprotected client, no agent)               ─┼─ mb (middlebox, `labelwall verifier`) ── srv
// srv runs flask, OpenSSH and iperf3. With the v1 profile, the demo sends HTTP, SSH and iperf3
// from both clients (TCP's options kept: window scaling, SACK, timestamps), lets a tag rule at
// the middlebox refuse a flow the agent did not tag, injects forged segments (scapy) into a
// live flow, replays a captured stream from another host, and shows what was labelled,
// verified and blocked. Then the same pair with the compat profile, the paper's format. The
// lab pieces (src/lab: namespaces, peers) are the ones the e2e tests use.
import { createTopology, standardTopology, type Topology } from '../lab/netns.js';
import { startHttpServer, httpRequests } from '../lab/http.js';
import { startSshServer, sshEchoParamiko } from '../lab/ssh.js';
import { startIperfServer, runIperf } from '../lab/iperf.js';
import { injectIntoFlow, startFlowClient, startSink, type ForgeKind } from '../lab/inject.js';
import { blob, firstDifference } from '../lab/blob.js';
import { makeTempDir } from '../lab/tmp.js';
import { labelwallRules, middleboxVerifierArgs, startDaemon, writeKey, type Daemon } from '../lab/labelwall.js';
import { capture, replay } from '../lab/replay.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Listen } from '../ui/listen.js';

type Say = (line: string) => void;

function ok(b: boolean): string {
  return b ? 'ok     ' : 'FAILED ';
}

export interface DemoResult {
  checks: number;
  failed: number;
}

export async function runDemo(opts: { iperfSeconds?: number; say?: Say; ui?: Listen } = {}): Promise<DemoResult> {
  const say: Say = opts.say ?? ((l) => process.stdout.write(`${l}\n`));
  let checks = 0;
  let failed = 0;
  const check = (cond: boolean, what: string): void => {
    checks++;
    if (!cond) failed++;
    say(`  ${ok(cond)}${what}`);
  };

  const dir = makeTempDir('lw-demo-');
  const key = writeKey(dir, 'site');
  const wrong = writeKey(dir, 'not-the-site-key');
  say('labelwall demo: building namespaces pc, uc, mb, srv ...');
  const topo: Topology = await createTopology(standardTopology({ subnetBase: 199 }));
  let agent: Daemon | undefined;
  let verifier: Daemon | undefined;
  try {
    const srvAddr = topo.addr('srv');
    say(`  pc ${topo.addr('pc')} (agent) and uc ${topo.addr('uc')} (no agent) -> mb (verifier) -> srv ${srvAddr}`);
    const http = await startHttpServer(topo, 'srv', { port: 8080 });
    const ssh = await startSshServer(topo, 'srv', { port: 2222 });
    const iperf = await startIperfServer(topo, 'srv', 5201);

    const http2 = await startHttpServer(topo, 'srv', { port: 8081 });
    // One config for both roles: the agent tags flows to srv:8080 as `web` (the egress rule that
    // allows them), the middlebox lets only `web` reach ports 8080-8081.
    const ifs = `[${topo.iface('mb', 'pc').name}, ${topo.iface('mb', 'uc').name}]`;
    const config = join(dir, 'labelwall.yaml');
    writeFileSync(
      config,
      `keys:\n  site: ${key.path}\ntags:\n  web: 300\n` +
        `agent:\n  profile: v1\n  key: site\n  egress:\n    default: allow\n    rules:\n` +
        `      - { name: no-curl, app: { exe: "**/curl" }, action: deny }\n` +
        `      - { name: web, dst: { ports: [8080], proto: tcp }, action: allow, tag: web }\n` +
        `verifier:\n  profile: v1\n  hook: forward\n  rules:\n` +
        `    - { name: web-only, in_interfaces: ${ifs}, ports: [8080, 8081], tags: [web], action: drop }\n` +
        `    - { name: all-tcp, in_interfaces: ${ifs}, action: drop }\n`,
      { mode: 0o600 },
    );
    agent = await startDaemon(topo, 'pc', 'agent', ['--config', config], dir);
    verifier = await startDaemon(topo, 'mb', 'verifier', ['--config', config], dir);
    say(
      `  agent on pc (pid ${agent.proc.pid}) labels every outgoing TCP segment with profile v1; verifier on mb (pid ${verifier.proc.pid}) drops what is not validly labelled`,
    );
    say(`  config ${config}: curl may not connect; tag web = 300 for flows to port 8080; at mb, ports 8080-8081 accept only tag web`);

    say('\nHTTP (flask on srv):');
    const reqs = [
      { method: 'GET' as const, path: '/blob/1000000' },
      { method: 'POST' as const, path: '/echo', body: blob(200_000, 'demo') },
    ];
    for (const family of [4, 6] as const) {
      const r = await httpRequests(topo, 'pc', http.url(topo.addr('srv', family)), reqs);
      check(
        r[0]!.status === 200 &&
          firstDifference(r[0]!.body, blob(1_000_000)) === -1 &&
          firstDifference(r[1]!.body, blob(200_000, 'demo')) === -1,
        `pc -> srv IPv${family}: GET 1 MB and POST 200 kB echoed, byte for byte`,
      );
    }
    const t0 = await verifier.counters();
    const t = await httpRequests(topo, 'pc', http2.url(srvAddr), [{ method: 'GET', path: '/blob/100', timeoutSec: 3 }]);
    const t1 = await verifier.counters();
    check(
      t[0]!.status === null && (t1['invalid:tag-denied'] ?? 0) > (t0['invalid:tag-denied'] ?? 0),
      `pc -> srv:8081 (labelled, but no egress rule tags it web): refused at mb, counted tag-denied`,
    );
    const u = await httpRequests(topo, 'uc', http.url(srvAddr), [{ method: 'GET', path: '/blob/100', timeoutSec: 3 }]);
    check(u[0]!.status === null, `uc -> srv: no answer (${u[0]!.error ?? `status ${u[0]!.status}`})`);

    say('\nSSH (OpenSSH on srv, paramiko client):');
    const s = await sshEchoParamiko(topo, 'pc', ssh, srvAddr, { kb: 256 });
    check(s.ok, `pc -> srv: 256 KiB echoed through an SSH session`);
    const su = await sshEchoParamiko(topo, 'uc', ssh, srvAddr, { kb: 1, timeoutSec: 3 });
    check(!su.ok, `uc -> srv: SSH fails (${su.error ?? 'connected?'})`);

    say('\niperf3:');
    const ip = await runIperf(topo, 'pc', srvAddr, { seconds: opts.iperfSeconds ?? 3 });
    check(
      ip.bytesReceived > 0,
      `pc -> srv: ${(ip.receivedBps / 1e6).toFixed(0)} Mbit/s labelled and verified (${ip.retransmits} retransmits)`,
    );
    await iperf.stop();

    say('\nForged segments injected into a live pc -> srv flow (scapy):');
    const kinds: Array<[ForgeKind, 'pc' | 'uc', string]> = [
      ['nolabel', 'pc', 'no label (sent from pc, around its firewall)'],
      ['wrongkey', 'uc', 'label made with another key (spoofed from uc)'],
      ['tampered', 'uc', 'valid label, payload changed afterwards'],
      ['replay', 'pc', 'label copied from another segment'],
    ];
    const sink = await startSink(topo, 'srv', { port: 9000 });
    const flow = await startFlowClient(topo, 'pc', srvAddr, 9000);
    await flow.send(1000, 'real');
    const ss = (await topo.exec('pc', ['ss', '-Htin', 'dst', srvAddr, 'dport', '=', '9000'])).stdout;
    const wscale = /wscale:\d+,\d+/.exec(ss)?.[0];
    check(
      wscale !== undefined,
      `the labelled flow negotiated window scaling (ss -ti on pc: ${wscale ?? 'no wscale'}, ${/mss:\d+/.exec(ss)?.[0] ?? ''})`,
    );
    const forgedPayloads: Buffer[] = [];
    for (const [kind, from, what] of kinds) {
      const before = await verifier.counters();
      const f = await injectIntoFlow(topo, from, flow, kind, { keyHex: key.hex, wrongKeyHex: wrong.hex, profile: 'v1' });
      forgedPayloads.push(f.payload);
      await new Promise((r) => setTimeout(r, 300));
      const after = await verifier.counters();
      const judged = kind === 'nolabel' ? 'unlabelled' : 'invalid';
      check(after[judged]! > before[judged]! && after.dropped! > before.dropped!, `${what}: judged ${judged}, dropped at mb`);
    }
    await flow.send(1000, 'more');
    await flow.close();
    await sink.done();
    const got = sink.received();
    const expected = Buffer.concat([blob(1000, 'real'), blob(1000, 'more')]);
    check(
      firstDifference(got, expected) === -1 &&
        got.length === expected.length &&
        forgedPayloads.every((p) => got.indexOf(p.subarray(0, 12)) < 0),
      `the server's socket read exactly the ${expected.length} real bytes and none of the forged ones`,
    );

    say('\nA labelled stream captured at mb and replayed from uc (an on-path attacker who saw it):');
    const cap = await capture(topo, 'mb', topo.iface('mb', 'pc').name, join(dir, 'seen.pcap'), 'tcp port 9001');
    const sink2 = await startSink(topo, 'srv', { port: 9001 });
    const seen = await startFlowClient(topo, 'pc', srvAddr, 9001);
    await seen.send(20_000, 'seen');
    await seen.close();
    await sink2.done();
    const pcap = await cap.stop();
    const r0 = await verifier.counters();
    const rp = await replay(topo, 'uc', [
      '--pcap',
      pcap,
      '--from-src',
      topo.addr('pc'),
      '--dport',
      '9001',
      '--select',
      'stream',
      '--new-src',
      topo.addr('uc'),
    ]);
    await new Promise((r) => setTimeout(r, 500));
    const r1 = await verifier.counters();
    const refused = (r1.invalid ?? 0) - (r0.invalid ?? 0);
    check(
      rp.sent > 0 && refused === rp.sent && r1.valid === r0.valid,
      `${rp.sent} segments replayed byte for byte (labels and all) from uc: ${refused} judged invalid (v1 binds each label to its flow), none valid`,
    );

    say('\nlabelwall status on pc and mb:');
    for (const d of [agent, verifier]) {
      const st = await d.status();
      const shown = Object.entries(st.counters)
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      say(`  ${st.role.padEnd(9)} ${shown}; kernel queue drops ${st.datapath.queueDropped + st.datapath.userDropped}`);
    }

    if (opts.ui) {
      const { serveUiUntilInterrupted } = await import('./ui.js');
      await serveUiUntilInterrupted({ topo, agent, verifier, listen: opts.ui, web: http, untagged: http2, say });
    }

    say('\nStopping (SIGTERM) ...');
    for (const [d, host, role] of [
      [agent, 'pc', 'agent'],
      [verifier, 'mb', 'verifier'],
    ] as const) {
      const code = await d.stop();
      const left = (await labelwallRules(topo, host)).length;
      check(code === 0 && left === 0, `${role} stopped (exit ${code}) and removed its iptables rules${left ? ` (${left} left)` : ''}`);
    }

    // With --ui the demo ends at Ctrl-C: the page was the point.
    if (!opts.ui) {
      say("\nThe compat profile (the paper's 40-byte label, byte-identical to its Windows driver):");
      agent = await startDaemon(topo, 'pc', 'agent', ['--profile', 'compat', '--key-file', key.path], dir);
      verifier = await startDaemon(
        topo,
        'mb',
        'verifier',
        middleboxVerifierArgs(topo, { profile: 'compat', keyFile: key.path, action: 'drop' }),
        dir,
      );
      const c = await httpRequests(topo, 'pc', http.url(srvAddr), [{ method: 'GET', path: '/blob/1000000' }]);
      check(
        c[0]!.status === 200 && firstDifference(c[0]!.body, blob(1_000_000)) === -1,
        'pc -> srv: GET 1 MB with compat labels, byte for byte',
      );
      const cu = await httpRequests(topo, 'uc', http.url(srvAddr), [{ method: 'GET', path: '/blob/100', timeoutSec: 3 }]);
      check(cu[0]!.status === null, 'uc -> srv: no answer');
      const cs = await verifier.counters();
      say(`  verifier (compat): valid=${cs.valid ?? 0} unlabelled=${cs.unlabelled ?? 0} dropped=${cs.dropped ?? 0}`);
      check((await agent.stop()) === 0 && (await verifier.stop()) === 0, 'compat agent and verifier stopped');
    }
  } finally {
    await topo.destroy();
    say(`Namespaces removed.`);
  }
  say(`\n${checks - failed} passed, ${failed} failed`);
  return { checks, failed };
}
