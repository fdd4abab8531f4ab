// The control endpoint's stop: a client whose request is under way (labelwall ui polls every
// second) must not hold a stopping daemon, or `systemctl stop` waits for its timeout and kills it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeControlServer, startControlServer } from '../../src/control/server.js';

/** A connection that has sent half a request: the server counts it as busy, not idle. */
async function halfRequest(path: string): Promise<Socket> {
  const s = connect(path);
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  s.write('GET /status HTTP/1.1\r\nHost: labelwall\r\n');
  s.on('error', () => undefined);
  return s;
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> =>
  Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())]);

test('closeControlServer ends at once although a client is in the middle of a request', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lw-control-'));
  const clients: Socket[] = [];
  try {
    const routes = { '/status': () => ({ type: 'application/json', body: '{}' }) };
    // The control: Node's own close() waits for that client (what made a stopping agent hang).
    const plainPath = join(dir, 'plain.sock');
    const plain = await startControlServer(plainPath, routes);
    const c1 = await halfRequest(plainPath);
    clients.push(c1);
    const plainClosed = new Promise<void>((r) => plain.close(() => r()));
    assert.equal(await within(plainClosed, 1000), 'timeout', 'server.close() alone waits for the busy connection');
    c1.destroy();
    await plainClosed;

    const path = join(dir, 'agent.sock');
    const server = await startControlServer(path, routes);
    const c2 = await halfRequest(path);
    clients.push(c2);
    const ended = new Promise<void>((r) => c2.once('close', () => r()));
    assert.notEqual(await within(closeControlServer(server, path), 1000), 'timeout', 'closed within a second');
    await ended;
    assert.ok(!existsSync(path), 'the socket file is gone');
  } finally {
    // Should it fail, no client keeps the test process alive.
    for (const c of clients) c.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
