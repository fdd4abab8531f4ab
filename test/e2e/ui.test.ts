// `labelwall ui` end to end: the real agent (egress policy, v1 tags) on pc and the real
// verifier (tag rule) on srv, real traffic from two copies of the Python interpreter under
// other names (one allowed and tagged, one denied by the agent) and one flow the verifier
// refuses (labelled without the tag its port needs); the real `labelwall ui` on the host's
// loopback and Debian's headless chromium reading the page as a person would.
//   pc (agent, egress policy) ── srv (echo servers, verifier --hook input)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { createTopology, waitFor, type NsProcess, type Topology } from '../../src/lab/netns.js';
import { makeTempDir } from '../../src/lab/tmp.js';
import { LABELWALL_BIN, startDaemon, writeKey, type Daemon } from '../../src/lab/labelwall.js';
import { REPO_ROOT } from '../../src/lab/paths.js';
import { launchChromium } from '../helpers/browser.js';

const PEER = join(REPO_ROOT, 'test', 'e2e', 'agent-egress-peer.py');
const PY_REAL = realpathSync('/usr/bin/python3');
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts', `ui-${new Date().toISOString().replace(/[:.]/g, '-')}`);

describe('labelwall ui: the page of a live agent and verifier, in chromium', { timeout: 90_000 }, () => {
  let topo: Topology;
  let dir: string;
  let agent: Daemon;
  let verifier: Daemon;
  let server: NsProcess;
  let ui: ChildProcess;
  let openUrl = '';
  let base = '';
  let browser: Browser;
  let page: Page;
  const exe: Record<string, string> = {};
  let traffic: Promise<void> | undefined;
  let stopTraffic = false;

  const client = async (program: string, port: number, bytes = 200_000): Promise<{ ok: boolean; errno: string | null }> => {
    const r = await topo.exec('pc', [program, PEER, 'tcp', topo.addr('srv'), String(port), String(bytes)], { timeoutMs: 15_000 });
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { ok: boolean; errno: string | null };
  };

  before(async () => {
    dir = makeTempDir('lw-ui-');
    mkdirSync(ARTIFACTS, { recursive: true });
    process.stdout.write(`# screenshots in ${ARTIFACTS}\n`);
    const key = writeKey(dir, 'site');
    for (const name of ['web-client', 'blocked-app']) {
      exe[name] = join(dir, name);
      copyFileSync(PY_REAL, exe[name]!);
    }
    topo = await createTopology({ hosts: [{ name: 'pc' }, { name: 'srv' }], links: [{ a: 'pc', b: 'srv' }], subnetBase: 187 });
    const cfg = join(dir, 'labelwall.yaml');
    writeFileSync(
      cfg,
      `keys:\n  site: ${key.path}\ntags:\n  web: 300\n` +
        `agent:\n  key: site\n  identity: { index_interval_ms: 1000 }\n  egress:\n    default: allow\n    rules:\n` +
        `      - { name: no-blocked-app, app: { exe: "**/blocked-app" }, action: deny }\n` +
        `      - { name: web, dst: { ports: [9000], proto: tcp }, action: allow, tag: web }\n` +
        `verifier:\n  hook: input\n  rules:\n    - { name: web-only, ports: [9000, 9001], tags: [web], action: drop }\n`,
      { mode: 0o600 },
    );
    server = topo.spawn('srv', ['/usr/bin/python3', PEER, 'serve', '9000,9001']);
    await server.waitForOutput(/"ready": true/, 10_000, 'stdout');
    verifier = await startDaemon(topo, 'srv', 'verifier', ['--config', cfg, '--queue-base', '60'], dir);
    agent = await startDaemon(topo, 'pc', 'agent', ['--config', cfg, '--queue-base', '50'], dir);
    // The ui on the host's loopback, port chosen by the kernel.
    ui = spawn(
      process.execPath,
      [LABELWALL_BIN, 'ui', '--listen', '127.0.0.1:0', '--control-socket', agent.socket, '--control-socket', verifier.socket],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    ui.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
    });
    ui.stderr!.on('data', (b: Buffer) => {
      out += b.toString();
    });
    openUrl = await waitFor(() => /open (http:\/\/127\.0\.0\.1:\d+\/\?token=\S+)/.exec(out)?.[1], 10_000, {
      what: `labelwall ui URL in: ${out}`,
    });
    base = openUrl.slice(0, openUrl.indexOf('?'));
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  });

  after(async () => {
    stopTraffic = true;
    await traffic?.catch(() => undefined);
    await browser?.close().catch(() => undefined);
    ui?.kill('SIGTERM');
    await topo?.destroy();
  });

  test('a request without the token is refused (401), with a wrong one too; anything but GET is 405', async () => {
    const token = new URL(openUrl).searchParams.get('token')!;
    for (const path of ['', 'api/overview', 'api/flows', 'api/stream', 'app.js', 'vendor/preact.mjs']) {
      assert.equal((await fetch(`${base}${path}`)).status, 401, `/${path} without token`);
      assert.equal((await fetch(`${base}${path}?token=x${token}`)).status, 401, `/${path} with a wrong token`);
      assert.equal((await fetch(`${base}${path}`, { headers: { cookie: 'labelwall_ui=nope' } })).status, 401);
    }
    // The control: the same requests with the token are answered.
    const ok = await fetch(`${base}api/overview`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    const ov = (await ok.json()) as { sources: Array<{ role: string; ok: boolean }> };
    assert.deepEqual(
      ov.sources.map((s) => [s.role, s.ok]),
      [
        ['agent', true],
        ['verifier', true],
      ],
    );
    const post = await fetch(`${base}api/overview`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(post.status, 405);
    // The page's URL sets the cookie and drops the token from the address.
    const first = await fetch(openUrl, { redirect: 'manual' });
    assert.equal(first.status, 302);
    assert.equal(first.headers.get('location'), '/');
    assert.match(first.headers.get('set-cookie') ?? '', /labelwall_ui=.*HttpOnly; SameSite=Strict/);
  });

  test('the page shows the allowed and the denied application with their real executables, the refusal, the rules', async () => {
    // Before the traffic: neither application is known (the control for what follows).
    await page.goto(openUrl);
    await page.waitForSelector('[data-role="verifier"] .total.valid');
    assert.equal(await page.locator(`[data-testid="apps"] tr[data-app="${exe['web-client']}"]`).count(), 0);

    const allowed = await client(exe['web-client']!, 9000);
    const denied = await client(exe['blocked-app']!, 9000, 1000);
    assert.equal(allowed.ok, true, 'web-client reaches srv:9000 (labelled, tag web, valid)');
    assert.equal(denied.ok, false, 'blocked-app is refused by the agent');
    // Allowed by the agent (default rule, no tag), refused by the verifier (tag-denied): ends after its connect timeout.
    const refused = client(exe['web-client']!, 9001, 1000);
    traffic = (async () => {
      while (!stopTraffic) await client(exe['web-client']!, 9000, 400_000).catch(() => undefined);
    })();

    const apps = page.locator('[data-testid="apps"]');
    await apps.locator(`tr[data-app="${exe['web-client']}"]`).waitFor({ timeout: 15_000 });
    const blockedRow = apps.locator(`tr[data-app="${exe['blocked-app']}"]`);
    await blockedRow.waitFor({ timeout: 15_000 });
    assert.match(await blockedRow.innerText(), /root/);
    assert.equal(await blockedRow.locator('td.deny').innerText(), '1', 'one denied flow of blocked-app');
    const webRow = await apps.locator(`tr[data-app="${exe['web-client']}"]`).innerText();
    assert.match(webRow, /web/, 'the app tag by name');

    // The denial as an event, with the executable and the rule; the rules table counts it.
    const events = page.locator('[data-testid="events"]');
    await events.locator('li[data-role="agent"]', { hasText: exe['blocked-app']! }).first().waitFor({ timeout: 10_000 });
    assert.match(await events.innerText(), /flow denied.*blocked-app.*rule no-blocked-app/);
    assert.equal((await refused).ok, false, 'the untagged flow to 9001 never connects');
    await events.locator('li[data-role="verifier"]', { hasText: 'tag-denied' }).first().waitFor({ timeout: 10_000 });
    assert.match(await events.innerText(), /invalid: tag-denied .*:9001, rule web-only, dropped/);
    const rules = page.locator('[data-testid="rules"]');
    await waitFor(async () => Number(await rules.locator('tr[data-rule="no-blocked-app"] td.num').innerText()) === 1, 10_000, {
      what: 'no-blocked-app counted 1 flow',
    });
    assert.ok(Number(await rules.locator('tr[data-rule="web"] td.num').innerText()) >= 1);
    await page.screenshot({ path: join(ARTIFACTS, 'page.png'), fullPage: true });
  });

  test("the chart's valid count grows while traffic flows", async () => {
    const validSum = (): Promise<number> =>
      page.evaluate(() => {
        const c = (window as unknown as { labelwallCharts: Record<string, { keys: string[]; data: number[][] }> }).labelwallCharts[
          '1:verdicts'
        ];
        if (!c) return -1;
        return c.data[c.keys.indexOf('valid') + 1]!.reduce((a, b) => a + (b ?? 0), 0);
      });
    const before = await validSum();
    assert.ok(before >= 0, 'the verifier chart exists');
    const counters0 = await verifier.counters();
    const grown = await waitFor(async () => ((await validSum()) > before + 100 ? validSum() : undefined), 15_000, {
      what: 'the valid series of the chart grows',
    });
    // The chart lags the counters by up to a sample, so it can grow from segments counted before
    // counters0 was read: wait for the counter to move too rather than expect it in the same instant.
    const counters1 = await waitFor(
      async () => {
        const c = await verifier.counters();
        return (c.valid ?? 0) > (counters0.valid ?? 0) ? c : undefined;
      },
      15_000,
      { what: 'the verifier counted valid segments meanwhile' },
    );
    // The total card shows the counter too.
    const shown = Number((await page.locator('[data-role="verifier"] .total.valid .n').innerText()).replace(/,/g, ''));
    assert.ok(shown > 0 && shown <= (counters1.valid ?? 0) + 100_000, `valid total shown ${shown}`);
    assert.ok(grown > before);
  });

  test('the filter narrows the table; sorting and the narrow window', async () => {
    const flows = page.locator('[data-testid="flows"]');
    const rowApps = async (): Promise<string[]> =>
      flows.locator('tbody tr').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-app') ?? ''));
    await waitFor(async () => new Set(await rowApps()).size >= 2, 10_000, { what: 'flows of both applications in the table' });
    const all = await rowApps();
    assert.ok(all.includes(exe['web-client']!) && all.includes(exe['blocked-app']!), all.join(','));
    await flows.locator('[data-testid="filter"]').fill('blocked-app');
    await waitFor(
      async () => {
        const r = await rowApps();
        return r.length > 0 && r.every((a) => a === exe['blocked-app']) ? r : undefined;
      },
      5000,
      { what: 'only blocked-app rows after filtering' },
    );
    assert.match(await flows.locator('[data-testid="flow-count"]').innerText(), /^1–1 of 1 flow\(s\) \(of \d+\)$/);
    await page.screenshot({ path: join(ARTIFACTS, 'filtered.png'), fullPage: true });
    await flows.locator('[data-testid="filter"]').fill('');
    // Sorted by bytes labelled, largest first: the denied flow (0 bytes) is not on top.
    await flows.locator('th', { hasText: 'bytes labelled' }).click();
    await waitFor(async () => (await flows.locator('th[aria-sort="descending"]').innerText()).startsWith('bytes labelled'), 5000, {
      what: 'sorted by bytes',
    });
    await waitFor(async () => (await rowApps())[0] === exe['web-client'], 5000, { what: 'web-client first when sorted by bytes' });
    // A narrow window: the page lays out in one column, the tables scroll inside their cards.
    await page.setViewportSize({ width: 420, height: 900 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scroll of the page at 420 px (overflow ${overflow} px)`);
    await page.screenshot({ path: join(ARTIFACTS, 'narrow.png'), fullPage: true });
    await page.setViewportSize({ width: 1400, height: 1000 });
  });

  test('the agent card lists its other non-zero counters (what the totals leave out) as /status has them', async () => {
    const other = page.locator('[data-role="agent"] [data-testid="other-counters"]');
    const rewritten = other.locator('[data-counter="handshakes_rewritten"] b');
    await rewritten.waitFor({ timeout: 10_000 });
    const shown = Number((await rewritten.innerText()).replace(/,/g, ''));
    const counters = await agent.counters();
    assert.ok(
      shown > 0 && shown <= (counters.handshakes_rewritten ?? 0),
      `handshakes rewritten shown ${shown}, counted ${counters.handshakes_rewritten}`,
    );
    // Neither the totals (labelled) nor byte counters are repeated there.
    assert.equal(await other.locator('[data-counter="labelled"]').count(), 0);
    assert.equal(await other.locator('[data-counter="labelled_bytes"]').count(), 0);
  });

  test('a chart whose history cannot be read says so; the control: the page above has no such message', async () => {
    assert.equal(await page.locator('[data-chart-error]').count(), 0);
    const broken = await browser.newPage();
    try {
      await broken.route('**/api/history*', (r) => r.fulfill({ status: 503, contentType: 'text/plain', body: 'history unavailable' }));
      await broken.goto(openUrl);
      const msg = broken.locator('[data-chart-error="1:verdicts"]');
      await msg.waitFor({ timeout: 10_000 });
      assert.match(await msg.innerText(), /no history for this chart: \/api\/history\?source=1: HTTP 503 history unavailable/);
    } finally {
      await broken.close();
    }
  });

  test('a stopped agent: its card says it is down, its last flows and rules are no longer listed', async () => {
    const flows = page.locator('[data-testid="flows"]');
    // The control: while it runs, its flows are listed.
    await waitFor(async () => (await flows.locator('tbody tr').count()) > 0, 10_000, { what: 'flows listed while the agent runs' });
    stopTraffic = true;
    await traffic?.catch(() => undefined);
    assert.equal(await agent.stop(), 0, agent.proc.describe());
    await page.locator('.card.down', { hasText: agent.socket }).waitFor({ timeout: 10_000 });
    await waitFor(async () => (await flows.locator('tbody tr').count()) === 0, 10_000, { what: 'no flows of the stopped agent' });
    assert.match(await flows.locator('[data-testid="flow-count"]').innerText(), /^0 flow\(s\)$/);
    assert.equal(await page.locator('[data-testid="apps"]').count(), 0, 'no applications without flows');
    assert.equal(await page.locator('[data-testid="rules"] tr[data-rule="no-blocked-app"]').count(), 0, "the stopped agent's rules");
    assert.match(await page.locator('[data-testid="warnings"]').innerText(), /no answer on /);
    // The verifier still answers: its card is there.
    await page.locator('[data-role="verifier"] .total.valid').waitFor({ timeout: 5000 });
    await page.screenshot({ path: join(ARTIFACTS, 'agent-down.png'), fullPage: true });
  });
});
