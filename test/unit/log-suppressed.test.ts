// Log lines about packets are rate-limited per worker; what the limit holds back is counted
// (`log_suppressed`, labelwall_log_suppressed_total), not lost without a trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHandler, counterNames, type VerifierHandlerData } from '../../src/verifier/handler.js';
import type { HandlerContext, QueuedPacket } from '../../src/datapath/types.js';
import { DEFAULT_MARK } from '../../src/config/model.js';
import { buildTcpPacket } from '../../src/wire/build.js';

function context(posted: unknown[]): HandlerContext {
  return {
    counters: new Float64Array(counterNames.length),
    workerIndex: 0,
    queueNum: 200,
    post: (m) => posted.push(m),
    scratch: Buffer.alloc(65536),
    failOpen: false,
    histograms: {},
  };
}

function queued(payload: Buffer): QueuedPacket {
  return {
    id: 1,
    family: 2,
    queueNum: 200,
    hwProtocol: 0x0800,
    hook: 2,
    mark: 0,
    indev: 0,
    outdev: 0,
    physindev: 0,
    physoutdev: 0,
    payload,
    capLen: payload.length,
  } as QueuedPacket;
}

test('verifier: verdict lines over 20 per second are counted as log_suppressed; under the limit nothing is', () => {
  const data: VerifierHandlerData = {
    profile: 'v1',
    rules: [{ name: 'all', inInterfaces: [], outInterfaces: [], sources: [], destinations: [], ports: [], keys: [], action: 'drop' }],
    mark: { ...DEFAULT_MARK },
    logBad: true,
  };
  const posted: unknown[] = [];
  const ctx = context(posted);
  const handle = createHandler(data, ctx);
  const at = (name: string): number => ctx.counters[counterNames.indexOf(name as (typeof counterNames)[number])]!;
  const unlabelled = buildTcpPacket({ family: 4, seq: 1, payload: Buffer.from('x') });
  // Control: under the limit every bad segment is logged and nothing is counted as held back.
  for (let i = 0; i < 5; i++) handle(queued(Buffer.from(unlabelled)));
  assert.equal(posted.filter((m) => (m as { event?: string }).event === 'verdict').length, 5);
  assert.equal(at('log_suppressed'), 0);
  for (let i = 0; i < 45; i++) handle(queued(Buffer.from(unlabelled)));
  assert.equal(at('unlabelled'), 50);
  const logged = posted.filter((m) => (m as { event?: string }).event === 'verdict').length;
  assert.equal(logged, 20, 'the limit: 20 lines in the second');
  assert.equal(at('log_suppressed'), 50 - logged);
});
