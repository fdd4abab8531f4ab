// The label-profile contract: a profile registered by name is the one the decision functions
// use, end to end (agent labelling and handshakes, verifier judging, pcap label and verify),
// with nothing outside its own object knowing its wire format. The fake profile below is the
// stand-in for the next real one: an 8-byte option (kind 254, the other experimental kind; ExID 0xbeef; 4 MAC bytes) that
// keeps the stack's options and clamps the MSS by 8.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decideAgentPacket, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT } from '../../src/agent/decide.js';
import { compat } from '../../src/label/compat.js';
import { LabelKey } from '../../src/label/keys.js';
import type { FindLabelResult, LabelProfile } from '../../src/label/profile.js';
import { DEFAULT_PROFILE, getProfile, profileNames, registerProfile } from '../../src/label/registry.js';
import { labelFrame, verifyFrame } from '../../src/pcap/frames.js';
import { LINKTYPE_ETHERNET } from '../../src/pcap/linktypes.js';
import { labelCapture, verifyCapture } from '../../src/pcap/process.js';
import { wrapIp } from '../helpers/synth.js';
import { PcapWriter } from '../../src/pcap/writer.js';
import { DEFAULT_MARK } from '../../src/config/model.js';
import { decideVerifierPacket, type RuntimeVerifierRule } from '../../src/verifier/decide.js';
import { verifierRulePlan } from '../../src/verifier/rules.js';
import { renderRestore } from '../../src/datapath/iptables.js';
import { buildTcpPacket, fixChecksums, typicalSynOptions } from '../../src/wire/build.js';
import { IPPROTO_TCP, parseIpPacket, type ParsedPacket } from '../../src/wire/packet.js';
import type { TcpView } from '../../src/wire/tcp.js';
import { findExperimentalOption, OPT_DUPLICATE, OPT_MALFORMED, OPT_NOT_FOUND } from '../../src/wire/tcpopts.js';

const FAKE_KIND = 254;
const FAKE_EXID = 0xbeef;
/** The time of every context a fake-profile call saw (callers reuse one context object). */
const seen: Array<number | undefined> = [];

function fakeFind(buf: Uint8Array, tcp: TcpView): FindLabelResult {
  const r = findExperimentalOption(buf, tcp.optionsOffset, tcp.optionsLen, FAKE_KIND, FAKE_EXID);
  if (r === OPT_NOT_FOUND) return { found: false, reason: 'no-label' };
  if (r === OPT_MALFORMED) return { found: false, reason: 'bad-option-length', malformed: true };
  if (r === OPT_DUPLICATE) return { found: false, reason: 'duplicate-label', malformed: true };
  if (buf[r + 1] !== 8) return { found: false, reason: 'bad-label-length', malformed: true };
  return { found: true, offset: r };
}

const tcpOf = (p: ParsedPacket, pkt: Uint8Array) => ({
  seq: pkt.subarray(p.tcp!.offset + 4, p.tcp!.offset + 8),
  payload: pkt.subarray(p.tcp!.payloadOffset, p.tcp!.payloadOffset + p.tcp!.payloadLen),
});

const fake: LabelProfile = {
  name: 'test-fake',
  formatVersion: 'test',
  optionKind: FAKE_KIND,
  optionLength: 8,
  overhead: 8,
  handshake: { eraseOutbound: false, eraseInbound: false, mssClamp: 8 },
  label(pkt, p, key, out, ctx) {
    seen.push(ctx?.timeMs);
    if (p.protocol !== IPPROTO_TCP || !p.tcp) return { ok: false, verdict: 'skipped', reason: 'not-tcp' };
    const t = p.tcp;
    const { seq, payload } = tcpOf(p, pkt);
    const opt = Uint8Array.of(FAKE_KIND, 8, FAKE_EXID >> 8, FAKE_EXID & 0xff, ...key.mac(seq, payload).subarray(0, 4));
    // The stack's options stay, the label goes after them (a fake: no room check beyond 40 bytes).
    const options = Buffer.concat([pkt.subarray(t.optionsOffset, t.optionsOffset + t.optionsLen), opt]);
    const packet = buildTcpPacket({
      family: p.family,
      src: p.src,
      dst: p.dst,
      srcPort: t.srcPort,
      dstPort: t.dstPort,
      seq: t.seq,
      ack: t.ack,
      flags: t.flags,
      window: t.window,
      options,
      payload,
    });
    // The contract: written into `out` when it is large enough (pcap builds the frame around it).
    if (out && out.length >= packet.length) {
      packet.copy(out);
      return { ok: true, packet: out.subarray(0, packet.length) };
    }
    return { ok: true, packet };
  },
  verify(pkt, p, keys, ctx) {
    seen.push(ctx?.timeMs);
    if (p.protocol !== IPPROTO_TCP || !p.tcp) return { verdict: 'skipped', reason: 'not-tcp' };
    const f = fakeFind(pkt, p.tcp);
    if (!f.found)
      return f.reason === 'no-label' ? { verdict: 'unlabelled', reason: 'no-label' } : { verdict: 'malformed', reason: f.reason };
    const { seq, payload } = tcpOf(p, pkt);
    const got = Buffer.from(pkt.subarray(f.offset + 4, f.offset + 8));
    for (let i = 0; i < keys.length; i++)
      if (got.equals(keys[i]!.mac(seq, payload).subarray(0, 4))) return { verdict: 'valid', keyIndex: i };
    return { verdict: 'invalid', reason: 'mac-mismatch' };
  },
  findOption: fakeFind,
  isOwnOption: (buf, at, len) => buf[at] === FAKE_KIND && len === 8 && ((buf[at + 2]! << 8) | buf[at + 3]!) === FAKE_EXID,
};

registerProfile(fake);

const key = LabelKey.fromBytes(Buffer.alloc(32, 5), 'k');
const other = LabelKey.fromBytes(Buffer.alloc(32, 6), 'other');
const data = buildTcpPacket({
  family: 4,
  srcPort: 40000,
  dstPort: 80,
  seq: 1234,
  ack: 1,
  flags: 0x18,
  payload: Buffer.from('hello profile'),
});
const rules: RuntimeVerifierRule[] = [
  { name: 'r', inInterfaces: [], outInterfaces: [], sources: [], destinations: [], ports: [], keys: [other, key], action: 'drop' },
];

test('registry: profiles are picked by name; a name is registered once; unknown names are refused', () => {
  assert.equal(getProfile('test-fake'), fake);
  assert.equal(getProfile(DEFAULT_PROFILE), compat);
  assert.equal(DEFAULT_PROFILE, 'compat');
  assert.deepEqual(profileNames(), ['compat', 'v1', 'any', 'test-fake']);
  assert.throws(() => registerProfile({ ...fake }), /label profile test-fake is already registered/);
  assert.throws(() => getProfile('v9'), /unknown label profile "v9" \(known: compat, v1, any, test-fake\)/);
});

test('agent and verifier decisions label and judge with the profile they are given', () => {
  const profile = getProfile('test-fake');
  const d = decideAgentPacket(profile, NF_INET_LOCAL_OUT, data, 0, 1500, key, Buffer.alloc(65536));
  assert.equal(d.counter, 'labelled');
  const labelled = Buffer.from(d.payload!);
  const p = parseIpPacket(labelled);
  assert.ok(p.ok && p.tcp);
  assert.equal(p.tcp.dataOffset, 28, "the fake option, not compat's 40 bytes");
  assert.deepEqual([...labelled.subarray(p.tcp.optionsOffset, p.tcp.optionsOffset + 4)], [254, 8, 0xbe, 0xef]);

  const v = decideVerifierPacket(profile, labelled, 0, rules, DEFAULT_MARK, undefined, undefined);
  assert.equal(v.judged, 'valid');
  assert.equal(v.keyFingerprint, key.fingerprint);
  assert.equal(v.verdict, 'repeat');
  // Control: compat does not know the fake's option (another ExID), and the fake does not know compat's.
  assert.equal(decideVerifierPacket(compat, labelled, 0, rules, DEFAULT_MARK, undefined, undefined).judged, 'unlabelled');
  const byCompat = decideAgentPacket(compat, NF_INET_LOCAL_OUT, data, 0, 1500, key, Buffer.alloc(65536));
  assert.equal(decideVerifierPacket(compat, Buffer.from(byCompat.payload!), 0, rules, DEFAULT_MARK, undefined, undefined).judged, 'valid');
  assert.equal(
    decideVerifierPacket(profile, Buffer.from(byCompat.payload!), 0, rules, DEFAULT_MARK, undefined, undefined).judged,
    'unlabelled',
  );
  // A changed payload byte is caught by the fake's MAC.
  const tampered = Buffer.from(labelled);
  tampered[tampered.length - 1]! ^= 1;
  fixChecksums(tampered);
  const t = decideVerifierPacket(profile, tampered, 0, rules, DEFAULT_MARK, undefined, undefined);
  assert.deepEqual([t.judged, t.reason, t.verdict], ['invalid', 'mac-mismatch', 'drop']);
});

test("the verifier's kernel rules call a segment unlabelled by the profile's option kind", () => {
  const sel = { inInterfaces: [], outInterfaces: [], sources: [], destinations: [], ports: [] };
  const text = (kind: number) =>
    renderRestore(
      verifierRulePlan(4, { hook: 'input', queues: [200], failOpen: false, markMask: 0xf00, optionKind: kind, selections: [sel] }),
    );
  assert.match(text(getProfile('test-fake').optionKind), /! --tcp-option 254 -g /);
  assert.doesNotMatch(text(getProfile('test-fake').optionKind), /--tcp-option 253/);
  assert.match(text(compat.optionKind), /! --tcp-option 253 -g /);
});

test('inbound handshakes follow the profile: what it erases, what it keeps, how far it clamps the MSS', () => {
  const synAck = buildTcpPacket({ family: 4, srcPort: 80, dstPort: 40000, seq: 9, ack: 1, flags: 0x12, options: typicalSynOptions(3, 4) });
  const opts = (b: Buffer) => {
    const p = parseIpPacket(b);
    assert.ok(p.ok && p.tcp);
    return [...b.subarray(p.tcp.optionsOffset, p.tcp.optionsOffset + p.tcp.optionsLen)];
  };
  const byFake = decideAgentPacket(getProfile('test-fake'), NF_INET_LOCAL_IN, synAck, 0, 1500, key, Buffer.alloc(65536));
  assert.equal(byFake.counter, 'handshakes_rewritten');
  const f = opts(Buffer.from(byFake.payload!));
  assert.equal((f[2]! << 8) | f[3]!, 1460 - 8, "MSS lowered by the fake's 8 bytes");
  assert.deepEqual(f.slice(4), opts(synAck).slice(4), 'window scale, SACK-permitted and timestamps kept');
  const byCompat = decideAgentPacket(compat, NF_INET_LOCAL_IN, synAck, 0, 1500, key, Buffer.alloc(65536));
  const c = opts(Buffer.from(byCompat.payload!));
  assert.equal((c[2]! << 8) | c[3]!, 1460 - 40);
  assert.ok(
    c.slice(4).every((b) => b === 1),
    'compat erases every other option (NOP)',
  );
});

test("pcap label and verify run the registered profile, in memory and through files, with the frames' capture time", async () => {
  const profile = getProfile('test-fake');
  const frame = wrapIp(LINKTYPE_ETHERNET, data);
  const l = labelFrame(profile, LINKTYPE_ETHERNET, frame, key);
  assert.ok(l.labelled);
  assert.equal(l.frame.length, frame.length + 8);
  assert.deepEqual(verifyFrame(profile, LINKTYPE_ETHERNET, l.frame, [other, key]), { verdict: 'valid', keyIndex: 1 });
  assert.deepEqual(verifyFrame(profile, LINKTYPE_ETHERNET, l.frame, [other]), { verdict: 'invalid', reason: 'mac-mismatch' });
  assert.equal(verifyFrame(compat, LINKTYPE_ETHERNET, l.frame, [key]).verdict, 'unlabelled');
  assert.deepEqual(verifyFrame(profile, LINKTYPE_ETHERNET, frame, [key]), { verdict: 'unlabelled', reason: 'no-label' });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-profile-'));
  try {
    const plain = path.join(dir, 'plain.pcap');
    const out = path.join(dir, 'labelled.pcap');
    const w = await PcapWriter.create(plain, { linktype: LINKTYPE_ETHERNET });
    await w.write(frame, { tsSec: 1_700_000_000, tsFrac: 250_000, tsUnitsPerSec: 1e6 });
    await w.write(wrapIp(LINKTYPE_ETHERNET, buildTcpPacket({ family: 6, seq: 7, payload: Buffer.from('v6') })), {
      tsSec: 1_700_000_016,
      tsFrac: 0,
      tsUnitsPerSec: 1e6,
    });
    await w.close();
    seen.length = 0;
    const lc = await labelCapture(profile, plain, out, key);
    assert.deepEqual([lc.total, lc.labelled], [2, 2]);
    assert.deepEqual(seen, [1_700_000_000_250, 1_700_000_016_000], "label() is given each frame's capture time");
    seen.length = 0;
    const vc = await verifyCapture(profile, out, [key]);
    assert.deepEqual([vc.total, vc.valid], [2, 2]);
    assert.deepEqual(seen, [1_700_000_000_250, 1_700_000_016_000], "verify() is given each frame's capture time");
    // Control: the same file judged by compat has no label of its own.
    const cc = await verifyCapture(compat, out, [key]);
    assert.deepEqual([cc.valid, cc.unlabelled], [0, 2]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
