// The queue worker's pure core (src/datapath/queue-core.ts): synthetic netlink bytes in,
// verdict bytes and counters out, no socket.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { NlWriter } from '../../src/datapath/netlink.js';
import { NFQA_SKB_CSUMNOTREADY, NFQA_SKB_GSO, NF_ACCEPT, NF_DROP, NF_REPEAT } from '../../src/datapath/nfqueue-proto.js';
import { QueueCore, type QueueCoreOptions } from '../../src/datapath/queue-core.js';
import { ACCEPT, DROP, type PacketHandler, type QueuedPacket, type VerdictDecision } from '../../src/datapath/types.js';
import { datagram, decodeVerdicts, simulateKernel, type PacketSpec } from './nfqueue-testutil.js';

const hex = (s: string): string => s.replace(/\s+/g, '');

interface Run {
  core: QueueCore;
  sent: Buffer[];
  /** Feeds datagrams as one receive batch (then finish, as the worker does). */
  batch(...dgrams: Buffer[]): void;
}

function makeCore(handler: PacketHandler, opts: Partial<QueueCoreOptions> = {}, sendBufSize = 1 << 16, failSends = false): Run {
  const sent: Buffer[] = [];
  let core: QueueCore;
  const flush = (w: NlWriter): void => {
    sent.push(Buffer.from(w.buf.subarray(0, w.off)));
    if (failSends) core.sendFailed();
    w.reset();
  };
  core = new QueueCore({ queueNum: 5, failOpen: false, batchVerdicts: true, ...opts }, handler, Buffer.alloc(sendBufSize), flush);
  return {
    core,
    sent,
    batch(...dgrams: Buffer[]) {
      for (const d of dgrams) core.datagram(d, d.length, false);
      core.finish();
    },
  };
}

const ip = (n = 40): Buffer => {
  const b = Buffer.alloc(n);
  b[0] = 0x45;
  b.writeUInt16BE(n, 2);
  return b;
};
const pkts = (first: number, n: number, extra: Partial<PacketSpec> = {}): PacketSpec[] =>
  Array.from({ length: n }, (_, i) => ({ id: first + i, payload: ip(), ...extra }));

describe('queue core: verdict bytes', () => {
  it('a run of identical plain verdicts becomes one VERDICT_BATCH (exact bytes)', () => {
    const r = makeCore(() => ACCEPT);
    r.batch(datagram(...pkts(10, 3)));
    assert.equal(r.sent.length, 1, 'one send per receive batch');
    assert.equal(
      r.sent[0]!.toString('hex'),
      hex('20000000 0303 0100 00000000 00000000 00 00 0005 0c00 0200 00000001 0000000c'), // BATCH, queue 5, accept, maxId 12
    );
    assert.deepEqual(r.core.counters, { received: 3, handlerErrors: 0, malformed: 0, truncated: 0, kernelErrors: 0, lastKernelErrno: 0 });
    assert.deepEqual(r.core.enc.counters, { verdicts: 3, batchVerdictMsgs: 1, payloadVerdicts: 0 });
  });

  it('a single packet gets a plain NFQNL_MSG_VERDICT; a mark goes with it', () => {
    const r = makeCore(() => ({ verdict: 'repeat', mark: 0x1234 }));
    r.batch(datagram({ id: 7, payload: ip() }));
    assert.equal(
      r.sent[0]!.toString('hex'),
      hex('28000000 0103 0100 00000000 00000000 00 00 0005 0c00 0200 00000004 00000007 0800 0300 00001234'),
    );
  });

  it('runs break on a different verdict, mark or payload; payload verdicts carry the bytes', () => {
    const repl = ip(44);
    repl[43] = 0xee;
    const plan: Record<number, VerdictDecision> = {
      1: ACCEPT,
      2: ACCEPT,
      3: DROP,
      4: { verdict: 'repeat', payload: repl },
      5: { verdict: 'accept', mark: 9 },
      6: { verdict: 'accept', mark: 9 },
      7: ACCEPT,
    };
    const r = makeCore((p) => plan[p.id]!);
    r.batch(datagram(...pkts(1, 4)), datagram(...pkts(5, 3)));
    assert.deepEqual(
      decodeVerdicts(r.sent).map((m) => [m.kind, m.queueNum, m.id, m.verdict, m.mark, m.payload]),
      [
        ['batch', 5, 2, NF_ACCEPT, -1, null],
        ['verdict', 5, 3, NF_DROP, -1, null],
        ['verdict', 5, 4, NF_REPEAT, -1, repl.toString('hex')],
        ['batch', 5, 6, NF_ACCEPT, 9, null],
        ['verdict', 5, 7, NF_ACCEPT, -1, null],
      ],
    );
    assert.deepEqual(r.core.enc.counters, { verdicts: 7, batchVerdictMsgs: 2, payloadVerdicts: 1 });
  });

  it('payloadLength sends only the first bytes of the payload buffer', () => {
    const big = Buffer.alloc(100, 0xab);
    const r = makeCore(() => ({ verdict: 'accept', payload: big, payloadLength: 24 }));
    r.batch(datagram({ id: 1, payload: ip() }));
    assert.deepEqual(
      decodeVerdicts(r.sent).map((m) => m.payload),
      ['ab'.repeat(24)],
    );
  });

  it('without batchVerdicts every packet gets its own verdict', () => {
    const r = makeCore(() => ACCEPT, { batchVerdicts: false });
    r.batch(datagram(...pkts(1, 3)));
    assert.deepEqual(
      decodeVerdicts(r.sent).map((m) => [m.kind, m.id]),
      [
        ['verdict', 1],
        ['verdict', 2],
        ['verdict', 3],
      ],
    );
    assert.equal(r.core.enc.counters.batchVerdictMsgs, 0);
  });

  it('a full send buffer is flushed mid-batch; every packet is still answered', () => {
    const r = makeCore((p) => ({ verdict: 'accept', payload: p.payload }), {}, 400);
    r.batch(datagram(...pkts(1, 20)));
    assert.ok(r.sent.length > 1, `${r.sent.length} sends`);
    const got = simulateKernel(
      pkts(1, 20).map((p) => p.id),
      decodeVerdicts(r.sent),
    );
    assert.equal(got.size, 20);
  });
});

describe('queue core: the packet view', () => {
  it('the handler sees every field, the payload as a view of the received bytes, one reused object', () => {
    const seen: QueuedPacket[] = [];
    const views: Array<[ArrayBufferLike, Record<string, unknown>]> = [];
    const r = makeCore((p) => {
      seen.push(p);
      views.push([p.payload.buffer, { ...p, payload: p.payload.toString('hex') }]);
      return ACCEPT;
    });
    const d = datagram(
      {
        id: 0xfffffffe,
        payload: Buffer.from('4500001c', 'hex'),
        queueNum: 5,
        family: 10,
        hwProtocol: 0x86dd,
        hook: 1,
        mark: 0xabcd,
        indev: 4,
        outdev: 7,
        skbInfo: NFQA_SKB_GSO | NFQA_SKB_CSUMNOTREADY,
        uid: 1000,
      },
      { id: 3, payload: ip() },
    );
    r.batch(d);
    assert.equal(seen.length, 2);
    assert.equal(seen[0], seen[1], 'one packet object, refilled for each message');
    assert.equal(views[0]![0], d.buffer, 'payload views the receive buffer (no copy)');
    assert.deepEqual(views[0]![1], {
      id: 0xfffffffe,
      family: 10,
      queueNum: 5,
      hwProtocol: 0x86dd,
      hook: 1,
      mark: 0xabcd,
      indev: 4,
      outdev: 7,
      physindev: 0,
      physoutdev: 0,
      payload: '4500001c',
      capLen: 4,
      skbInfo: 3,
      gso: true,
      csumNotReady: true,
      uid: 1000,
      gid: -1,
    });
    const second = views[1]![1];
    assert.deepEqual(
      [second.id, second.mark, second.gso, second.csumNotReady, second.uid, second.indev],
      [3, 0, false, false, -1, 0],
      'fields of the earlier packet do not leak',
    );
  });
});

describe('queue core: errors', () => {
  it('a handler that throws or decides nonsense: fail-mode verdict and handlerErrors', () => {
    const bad: Array<() => VerdictDecision> = [
      () => {
        throw new Error('boom');
      },
      () => null as unknown as VerdictDecision,
      () => ({ verdict: 'maybe' }) as unknown as VerdictDecision,
      () => ({ verdict: 'accept', mark: -1 }),
      () => ({ verdict: 'accept', mark: 2 ** 32 }),
      () => ({ verdict: 'accept', mark: 1.5 }),
      () => ({ verdict: 'accept', payload: Buffer.alloc(19) }),
      () => ({ verdict: 'accept', payload: Buffer.alloc(40), payloadLength: 41 }),
      () => ({ verdict: 'accept', payload: 'text' as unknown as Uint8Array }),
      () => ({ verdict: 'accept', payload: Buffer.alloc(70000) }),
    ];
    for (const failOpen of [false, true]) {
      let i = 0;
      const r = makeCore((p) => (p.id % 2 === 0 ? ACCEPT : bad[i++]!()), { failOpen, batchVerdicts: false });
      r.batch(datagram(...pkts(1, bad.length * 2)));
      const msgs = decodeVerdicts(r.sent);
      assert.equal(msgs.length, bad.length * 2, 'every packet answered');
      for (const m of msgs) assert.equal(m.verdict, m.id % 2 === 0 ? NF_ACCEPT : failOpen ? NF_ACCEPT : NF_DROP, `id ${m.id}`);
      assert.equal(r.core.counters.handlerErrors, bad.length);
      assert.equal(r.core.counters.received, bad.length * 2);
    }
  });

  it('a packet message that does not parse but names its id gets the fail verdict; batching goes on', () => {
    const r = makeCore(() => ACCEPT);
    r.batch(
      datagram({ id: 1, payload: ip() }, { id: 2, payload: ip(), badAttr: true }, { id: 3, payload: ip() }, { id: 4, payload: ip() }),
    );
    assert.deepEqual(
      decodeVerdicts(r.sent).map((m) => [m.kind, m.id, m.verdict]),
      [
        ['verdict', 1, NF_ACCEPT],
        ['verdict', 2, NF_DROP],
        ['batch', 4, NF_ACCEPT],
      ],
    );
    assert.equal(r.core.counters.malformed, 1);
    assert.equal(r.core.counters.received, 4);
  });

  it('an unreadable packet id stops batch verdicts for good (they would sweep that packet up)', () => {
    const r = makeCore(() => ACCEPT);
    r.batch(datagram(...pkts(1, 2), { id: 3, noHeader: true, payload: ip() }, ...pkts(4, 2)));
    r.batch(datagram(...pkts(6, 2)));
    assert.deepEqual(
      decodeVerdicts(r.sent).map((m) => [m.kind, m.id]),
      [
        ['batch', 2],
        ['verdict', 4],
        ['verdict', 5],
        ['verdict', 6],
        ['verdict', 7],
      ],
    );
    assert.equal(r.core.counters.malformed, 1);
  });

  it('a broken netlink header: the rest of the datagram is skipped, counted, and batching stops', () => {
    const r = makeCore(() => ACCEPT);
    const good = datagram(...pkts(1, 2));
    // A third message whose nlmsg_len runs past the datagram.
    const broken = Buffer.concat([good, Buffer.from(hex('ffff0000 0003 0000 00000000 00000000'), 'hex')]);
    r.batch(broken);
    r.batch(datagram(...pkts(3, 2)));
    assert.deepEqual(
      decodeVerdicts(r.sent).map((m) => [m.kind, m.id]),
      [
        ['batch', 2],
        ['verdict', 3],
        ['verdict', 4],
      ],
    );
    assert.equal(r.core.counters.malformed, 1);
    assert.equal(r.core.counters.received, 4);
  });

  it('NLMSG_ERROR: errno counted in kernelErrors, acknowledgements (errno 0) not', () => {
    const r = makeCore(() => ACCEPT);
    r.batch(datagram({ errno: 0 }, { errno: 2 }, { id: 1, payload: ip() }, { errno: 22 }));
    assert.equal(r.core.counters.kernelErrors, 2);
    assert.equal(r.core.counters.lastKernelErrno, 22);
    assert.equal(r.core.counters.received, 1);
    assert.deepEqual(
      decodeVerdicts(r.sent).map((m) => m.id),
      [1],
    );
  });

  it('MSG_TRUNC: counted, and only the bytes that arrived are read', () => {
    const r = makeCore(() => ACCEPT);
    const d = datagram(...pkts(1, 2));
    r.core.datagram(d, d.length + 5000, true);
    r.core.finish();
    assert.equal(r.core.counters.truncated, 1);
    assert.equal(r.core.counters.malformed, 0, 'nothing read past the bytes that arrived');
    assert.deepEqual(
      decodeVerdicts(r.sent).map((m) => [m.kind, m.id]),
      [['batch', 2]],
    );
  });

  it('a failed send stops batch verdicts for good', () => {
    const r = makeCore(() => ACCEPT, {}, 1 << 16, true);
    r.batch(datagram(...pkts(1, 3)));
    r.batch(datagram(...pkts(4, 2)));
    assert.deepEqual(
      decodeVerdicts(r.sent).map((m) => [m.kind, m.id]),
      [
        ['batch', 3],
        ['verdict', 4],
        ['verdict', 5],
      ],
    );
  });
});

describe('queue core: model check', () => {
  it('under kernel semantics every packet gets exactly its decision, whatever the datagram split and buffer size', () => {
    const decision = fc.oneof(
      fc.constantFrom<VerdictDecision>(ACCEPT, DROP, { verdict: 'repeat', mark: 3 }, { verdict: 'accept', mark: 0 }),
      fc.uint8Array({ minLength: 20, maxLength: 200 }).map((u): VerdictDecision => ({ verdict: 'repeat', payload: Buffer.from(u) })),
      fc.constant<VerdictDecision | 'throw'>('throw'),
    );
    fc.assert(
      fc.property(
        fc.array(decision, { minLength: 1, maxLength: 60 }),
        fc.constantFrom(0, 1, 0xfffffff0),
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 10 }),
        fc.boolean(),
        fc.constantFrom(400, 1 << 16),
        (ds, first, splits, failOpen, size) => {
          const ids = ds.map((_, i) => (first + i) >>> 0);
          const byId = new Map(ids.map((id, i) => [id, ds[i]!]));
          const r = makeCore(
            (p) => {
              const d = byId.get(p.id)!;
              if (d === 'throw') throw new Error('x');
              return d;
            },
            { failOpen },
            size,
          );
          // Datagrams of the split sizes, a receive batch every other datagram.
          let at = 0;
          let k = 0;
          while (at < ids.length) {
            const n = splits[k++ % splits.length]!;
            const d = datagram(...ids.slice(at, at + n).map((id) => ({ id, payload: ip() })));
            r.core.datagram(d, d.length, false);
            if (k % 2 === 0) r.core.finish();
            at += n;
          }
          r.core.finish();
          const got = simulateKernel(ids, decodeVerdicts(r.sent));
          ids.forEach((id, i) => {
            const d = ds[i]!;
            const want =
              d === 'throw'
                ? { verdict: failOpen ? NF_ACCEPT : NF_DROP, mark: -1, payload: null }
                : {
                    verdict: { accept: NF_ACCEPT, drop: NF_DROP, repeat: NF_REPEAT }[d.verdict],
                    mark: d.mark ?? -1,
                    payload: d.payload ? Buffer.from(d.payload).toString('hex') : null,
                  };
            assert.deepEqual(got.get(id), want, `id ${id}`);
          });
          assert.equal(r.core.counters.handlerErrors, ds.filter((d) => d === 'throw').length);
        },
      ),
      { numRuns: 300 },
    );
  });
});
