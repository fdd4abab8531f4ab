// The Wireshark dissector (contrib/wireshark/labelwall.lua) run by the real tshark on real
// captures; no namespaces or root needed, it lives with the e2e tests because it runs real tools.
// - compat: a capture labelled by the real `labelwall pcap label --profile compat` shows profile
//   compat on every labelled frame, and its MAC is the option's bytes 8-39 as tshark's own TCP
//   dissector sees them.
// - v1: frames built with scapy from the v1 wire format (test/e2e/wireshark-dissector-craft.py,
//   independent of labelwall's code and of the dissector) show every field as built: full and
//   compact, S/D/P, key ids, epochs, tags; malformed ones (bad length, bad version bits, compact
//   on a SYN, two labels) are named and get expert info, with the reason `pcap verify` gives.
// - v1 by the real `labelwall pcap label --profile v1 --key-file 5=K --tag 300 --nat source,ports`:
//   every labelled frame shows what `pcap verify --json` reads from it (key id, tag, NAT, form).
// - v1 by the real labeller: demo.pcap and unlabelled scapy frames (a handshake with every
//   option, data with three SACK blocks to trim, data with 24 bytes of options that leave room for
//   the compact form only)
//   labelled by src/label/v1.ts through the pcap code (labelFrame, as `pcap label` does) with
//   varied key ids, tags and NAT flags: every field the dissector shows is what the real v1
//   verifier (verifyFrame) reads from the same frame, and the verifier calls it valid.
// - tags: with -o labelwall.tags_file:CONFIG the tag names of a labelwall config show; a bad
//   file is reported with its line and no names are invented.
// - an agent capture: segments the real `labelwall agent` labelled, captured with tcpdump on
//   the router, show the agent's profile on every segment from the client, and `labelwall pcap
//   verify` calls the same segments valid (root: namespaces).
// - controls: without the script tshark knows none of these fields; kind 253 with another ExID
//   (or kind 254 with ours) is not called a label; the TCP dissection (every tcp field, the
//   whole -V tree) is the same with and without the script.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../../src/lab/tmp.js';
import { LABELWALL_BIN, startDaemon, writeKey, type Daemon } from '../../src/lab/labelwall.js';
import { createTopology, standardTopology, type Topology } from '../../src/lab/netns.js';
import { httpRequests, startHttpServer } from '../../src/lab/http.js';
import { blob, firstDifference } from '../../src/lab/blob.js';
import { loadKeyFile } from '../../src/label/keys.js';
import { NAT_DST, NAT_PORTS, NAT_SRC, type VerifyResult } from '../../src/label/profile.js';
import { getProfile } from '../../src/label/registry.js';
import { labelFrame, verifyFrame } from '../../src/pcap/frames.js';
import { readCapture } from '../../src/pcap/reader.js';
import { PcapWriter } from '../../src/pcap/writer.js';
import { PYTHON, REPO_ROOT } from '../../src/lab/paths.js';

const SCRIPT = join(REPO_ROOT, 'contrib', 'wireshark', 'labelwall.lua');
const CRAFT = join(REPO_ROOT, 'test', 'e2e', 'wireshark-dissector-craft.py');
const FIXTURES = join(REPO_ROOT, 'test', 'fixtures');

const FIELDS = [
  'frame.number',
  'labelwall.profile',
  'labelwall.form',
  'labelwall.length',
  'labelwall.key_id',
  'labelwall.nat.s',
  'labelwall.nat.d',
  'labelwall.nat.p',
  'labelwall.epoch8',
  'labelwall.epoch',
  'labelwall.tag',
  'labelwall.tag_name',
  'labelwall.mac',
  'labelwall.malformed',
  'labelwall.reserved',
  'tcp.options',
  'tcp.flags.syn',
  '_ws.expert.message',
] as const;
type Row = Record<(typeof FIELDS)[number], string[]>;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60_000, env });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// tshark runs with an empty home of its own: a copy of the plugin installed in the real
// ~/.local/lib/wireshark/plugins, or personal preferences, must not change what it shows.
let tsharkEnv: NodeJS.ProcessEnv | undefined;

function tshark(args: string[], env = tsharkEnv): Run {
  return run('tshark', args, env);
}

function ok(r: Run, what: string): string {
  assert.equal(r.status, 0, `${what}: exit ${r.status}\n${r.stderr}`);
  return r.stdout;
}

/** One row per frame, each field's occurrences in order ('|' joins them: no message has one). */
function fields(file: string, extra: string[] = []): Row[] {
  const args = [
    '-X',
    `lua_script:${SCRIPT}`,
    ...extra,
    '-r',
    file,
    '-T',
    'fields',
    '-E',
    'separator=/t',
    '-E',
    'occurrence=a',
    '-E',
    'aggregator=|',
  ];
  for (const f of FIELDS) args.push('-e', f);
  const out = ok(tshark(args), `tshark -T fields on ${file}`);
  return out
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const cols = line.split('\t');
      assert.equal(cols.length, FIELDS.length, `tshark row: ${line}`);
      const row = {} as Row;
      FIELDS.forEach((f, i) => {
        row[f] = cols[i] === '' ? [] : cols[i]!.split('|');
      });
      return row;
    });
}

// tshark 4.0 prints booleans as 1/0, later versions as True/False.
const bool = (v: string | undefined): number | undefined =>
  v === undefined ? undefined : v === '1' || v === 'True' ? 1 : v === '0' || v === 'False' ? 0 : NaN;

// ---------------------------------------------------------------------------------------------
// v1 frames, described as the craft script takes them; the expectations below are derived from
// the same descriptions by the spec, not by the dissector.

interface V1 {
  form: 'full' | 'compact';
  version?: number;
  s: 0 | 1;
  d: 0 | 1;
  p: 0 | 1;
  key_id: number;
  epoch_offset?: number;
  tag: number;
  mac: string;
}
type Opt =
  | { v1: V1 }
  | { raw: string }
  | { mss: number }
  | { wscale: number }
  | { sackok: true }
  | { ts: [number, number] }
  | { sack: [number, number][] }
  | { nop: true };
interface Frame {
  name: string;
  time: number;
  family: 4 | 6;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: string;
  payload?: string;
  options: Opt[];
  /** Malformed reasons the dissector must name, in wire order. */
  malformed?: string[];
}

const T0 = 1_764_640_000.25; // any fixed time: epochs are relative to each frame's own timestamp
const MAC = '8f0e6d1c2b3a49586776859403a2b1c0d9e8f7a6';
const v1 = (o: Partial<V1> & Pick<V1, 'form'>): { v1: V1 } => ({ v1: { s: 0, d: 0, p: 0, key_id: 0, tag: 0, mac: MAC, ...o } });
const tcp4 = { family: 4 as const, src: '192.0.2.10', dst: '198.51.100.20', sport: 43001, dport: 443 };
const tcp6 = { family: 6 as const, src: '2001:db8::10', dst: '2001:db8:1::20', sport: 43002, dport: 22 };

const FRAMES: Frame[] = [
  {
    name: 'SYN, full, key 3, tag 300 beside MSS/SACK-permitted/timestamps/window scale',
    ...tcp4,
    time: T0,
    seq: 1000,
    ack: 0,
    flags: 'S',
    options: [{ mss: 1460 }, { sackok: true }, { ts: [11, 0] }, { nop: true }, { wscale: 7 }, v1({ form: 'full', key_id: 3, tag: 300 })],
  },
  {
    name: 'SYN-ACK over IPv6, full, key 7, D set, tag 22, epoch one ahead',
    ...tcp6,
    time: T0 + 1,
    seq: 5000,
    ack: 1001,
    flags: 'SA',
    options: [
      { mss: 1440 },
      { nop: true },
      { nop: true },
      { sackok: true },
      v1({ form: 'full', key_id: 7, d: 1, tag: 22, epoch_offset: 1 }),
    ],
  },
  {
    name: 'data, compact with timestamps and a SACK block, S and P set, key 5, tag 65535, epoch two behind',
    ...tcp4,
    time: T0 + 2,
    seq: 1001,
    ack: 5001,
    flags: 'PA',
    payload: '474554202f20485454502f312e310d0a0d0a',
    options: [{ nop: true }, { nop: true }, { ts: [12, 9] }, v1({ form: 'compact', key_id: 5, s: 1, p: 1, tag: 65535, epoch_offset: -2 })],
  },
  {
    name: 'pure ACK, full, S/D/P all set, key 1, unclassified (tag 0)',
    ...tcp6,
    time: T0 + 3,
    seq: 5001,
    ack: 1019,
    flags: 'A',
    options: [v1({ form: 'full', key_id: 1, s: 1, d: 1, p: 1 })],
  },
  {
    name: 'stale epoch: three behind the capture time',
    ...tcp4,
    time: T0 + 4,
    seq: 1019,
    ack: 5001,
    flags: 'A',
    options: [v1({ form: 'full', key_id: 2, tag: 300, epoch_offset: -3 })],
  },
  {
    name: 'malformed: compact on a SYN',
    ...tcp4,
    time: T0 + 5,
    seq: 9000,
    ack: 0,
    flags: 'S',
    options: [{ mss: 1460 }, v1({ form: 'compact', key_id: 4, tag: 300 })],
    malformed: ['compact-on-syn'],
  },
  {
    name: 'malformed: version bits 10',
    ...tcp4,
    time: T0 + 6,
    seq: 1019,
    ack: 5001,
    flags: 'A',
    options: [v1({ form: 'full', version: 2, key_id: 3, tag: 300 })],
    malformed: ['bad-label-version'],
  },
  {
    name: 'malformed: our ExID with length 24',
    ...tcp6,
    time: T0 + 7,
    seq: 5001,
    ack: 1019,
    flags: 'A',
    options: [{ raw: `fd184677${'41'.repeat(20)}` }],
    malformed: ['bad-label-length'],
  },
  {
    name: 'malformed: two labels in one segment',
    ...tcp4,
    time: T0 + 8,
    seq: 1019,
    ack: 5001,
    flags: 'A',
    options: [v1({ form: 'compact', key_id: 1, tag: 300 }), v1({ form: 'compact', key_id: 2, tag: 22 })],
    malformed: ['duplicate-label'],
  },
  {
    name: 'malformed: a full label in 12 bytes of options',
    ...tcp4,
    time: T0 + 8,
    seq: 1019,
    ack: 5001,
    flags: 'A',
    options: [{ raw: `fd144677${'41'.repeat(8)}` }],
    malformed: ['bad-option-length'],
  },
  {
    name: 'control: kind 253 with the TCP Fast Open ExID 0xf989',
    ...tcp4,
    time: T0 + 9,
    seq: 1019,
    ack: 5001,
    flags: 'A',
    options: [{ raw: `fd14f989${'00'.repeat(16)}` }],
  },
  {
    name: 'control: kind 253 with ExID 0x4678, v1-shaped',
    ...tcp4,
    time: T0 + 10,
    seq: 1019,
    ack: 5001,
    flags: 'A',
    options: [{ raw: `fd144678410000012c${'00'.repeat(11)}` }],
  },
  {
    name: 'control: kind 254 with our ExID',
    ...tcp6,
    time: T0 + 11,
    seq: 5001,
    ack: 1019,
    flags: 'A',
    options: [{ raw: `fe144677410000012c${'00'.repeat(11)}` }],
  },
];

/** What a well-formed v1 label must show, from its description (E from the frame's time). */
function expectV1(f: Frame, o: V1): Record<string, string | number | undefined> {
  const nowE = Math.floor(f.time / 16);
  const e = nowE + (o.epoch_offset ?? 0);
  const inWindow = (o.epoch_offset ?? 0) >= -2 && (o.epoch_offset ?? 0) <= 1;
  return {
    profile: 'v1',
    form: o.form,
    length: o.form === 'full' ? 20 : 16,
    key_id: o.key_id,
    s: o.s,
    d: o.d,
    p: o.p,
    epoch8: e % 256,
    epoch: inWindow ? e : undefined,
    tag: o.tag,
    mac: o.mac.slice(0, o.form === 'full' ? 24 : 16),
  };
}

function shown(row: Row, i: number): Record<string, string | number | undefined> {
  const n = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  return {
    profile: row['labelwall.profile'][i],
    form: row['labelwall.form'][i],
    length: n(row['labelwall.length'][i]),
    key_id: n(row['labelwall.key_id'][i]),
    s: bool(row['labelwall.nat.s'][i]),
    d: bool(row['labelwall.nat.d'][i]),
    p: bool(row['labelwall.nat.p'][i]),
    epoch8: n(row['labelwall.epoch8'][i]),
    epoch: n(row['labelwall.epoch'][i]),
    tag: n(row['labelwall.tag'][i]),
    mac: row['labelwall.mac'][i],
  };
}

const OURS = FIELDS.filter((f) => f.startsWith('labelwall.'));
const noneOfOurs = (row: Row): string[] => OURS.filter((f) => row[f].length > 0);

describe('Wireshark dissector with the real tshark', { timeout: 180_000 }, () => {
  let dir: string;
  let compatPcap: string;
  let v1Pcap: string;
  let labelledCount: number;

  before(() => {
    dir = makeTempDir('lw-wireshark-');
    const home = join(dir, 'empty-home');
    mkdirSync(home);
    tsharkEnv = { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, '.config') };
    assert.match(ok(tshark(['--version']), 'tshark --version'), /TShark \(Wireshark\) \d+\.\d+/);
    // The key file must be private (the tool refuses 0644): a private copy of the fixture.
    const key = join(dir, 'demo.key');
    copyFileSync(join(FIXTURES, 'demo.key'), key);
    chmodSync(key, 0o600);
    compatPcap = join(dir, 'compat.pcap');
    const r = run(process.execPath, [
      LABELWALL_BIN,
      'pcap',
      'label',
      '--profile',
      'compat',
      '--key-file',
      key,
      join(FIXTURES, 'demo.pcap'),
      compatPcap,
    ]);
    const summary = ok(r, 'labelwall pcap label') + r.stderr;
    const m = /(\d+) labelled/.exec(summary);
    assert.ok(m, `labelwall pcap label summary: ${summary}`);
    labelledCount = Number(m[1]);
    assert.ok(labelledCount >= 5, summary);

    v1Pcap = join(dir, 'v1.pcap');
    const spec = join(dir, 'v1.json');
    writeFileSync(spec, JSON.stringify({ out: v1Pcap, frames: FRAMES }));
    ok(run(PYTHON, [CRAFT, spec]), 'craft v1 frames');
  });

  test('compat: every frame labelwall pcap label labelled shows profile compat and the MAC of its option', () => {
    const rows = fields(compatPcap);
    const labelled = rows.filter((r) => r['tcp.options'].length > 0);
    assert.equal(labelled.length, labelledCount, 'frames with TCP options = frames the tool labelled');
    for (const row of labelled) {
      const frame = row['frame.number'][0];
      const opt = row['tcp.options'][0]!;
      // The tool's label is the only option: kind 253, length 40, ExID 0x4677, 4 zero bytes, MAC.
      assert.equal(opt.slice(0, 16), 'fd28467700000000', `frame ${frame}: option bytes ${opt}`);
      assert.deepEqual(row['labelwall.profile'], ['compat'], `frame ${frame}`);
      assert.deepEqual(row['labelwall.length'], ['40'], `frame ${frame}`);
      assert.deepEqual(row['labelwall.reserved'], ['00000000'], `frame ${frame}`);
      assert.deepEqual(row['labelwall.mac'], [opt.slice(16, 80)], `frame ${frame}: MAC = option bytes 8-39`);
      for (const f of ['labelwall.form', 'labelwall.key_id', 'labelwall.tag', 'labelwall.epoch8', 'labelwall.malformed'] as const) {
        assert.deepEqual(row[f], [], `frame ${frame}: ${f} is v1-only`);
      }
    }
    for (const row of rows.filter((r) => r['tcp.options'].length === 0)) {
      assert.deepEqual(noneOfOurs(row), [], `frame ${row['frame.number'][0]} is not labelled`);
    }
  });

  test('v1: crafted full and compact labels show every field as built', () => {
    const rows = fields(v1Pcap);
    assert.equal(rows.length, FRAMES.length);
    let checked = 0;
    FRAMES.forEach((f, i) => {
      if (f.malformed || f.name.startsWith('control')) return;
      const row = rows[i]!;
      const labels = f.options.filter((o): o is { v1: V1 } => 'v1' in o);
      assert.equal(labels.length, 1);
      assert.deepEqual(shown(row, 0), expectV1(f, labels[0]!.v1), f.name);
      assert.deepEqual(row['labelwall.malformed'], [], f.name);
      const stale = (labels[0]!.v1.epoch_offset ?? 0) < -2;
      assert.equal(
        row['_ws.expert.message'].some((m) => m.includes('stale-epoch')),
        stale,
        `${f.name}: stale-epoch expert info iff outside the window\n${row['_ws.expert.message'].join('\n')}`,
      );
      assert.deepEqual(row['labelwall.tag_name'], [], `${f.name}: no tags file, no names`);
      checked++;
    });
    assert.equal(checked, 5);
  });

  test('v1: malformed labels are named with expert info', () => {
    const rows = fields(v1Pcap);
    const experts: Record<string, RegExp> = {
      'compact-on-syn': /compact \(16-byte\) label on a SYN/,
      'bad-label-version': /version bits are not 01/,
      'bad-label-length': /length 24 .*bad-label-length/,
      'duplicate-label': /Two labelwall labels in one segment/,
      'bad-option-length': /length 20 with 12 bytes of options left: bad-option-length/,
    };
    let checked = 0;
    FRAMES.forEach((f, i) => {
      if (!f.malformed) return;
      const row = rows[i]!;
      assert.deepEqual(row['labelwall.malformed'], f.malformed, f.name);
      for (const reason of f.malformed) {
        assert.ok(
          row['_ws.expert.message'].some((m) => experts[reason]!.test(m)),
          `${f.name}: expert info for ${reason}\n${row['_ws.expert.message'].join('\n')}`,
        );
      }
      checked++;
    });
    assert.equal(checked, 5);
    // The real verifier (pcap verify, profile any) gives the same reason for each, and calls the
    // controls unlabelled: two implementations of the same rules agree.
    const key = join(dir, 'demo.key');
    const v = run(process.execPath, [LABELWALL_BIN, 'pcap', 'verify', '--key-file', key, '--json', v1Pcap]);
    const verdicts = v.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { frame?: number; verdict: string; reason?: string })
      .filter((o) => o.frame !== undefined);
    assert.equal(verdicts.length, FRAMES.length, v.stdout + v.stderr);
    FRAMES.forEach((f, i) => {
      const got = verdicts[i]!;
      if (f.malformed) assert.deepEqual([got.verdict, got.reason], ['malformed', f.malformed[0]], `${f.name}: pcap verify`);
      else if (f.name.startsWith('control')) assert.equal(got.verdict, 'unlabelled', `${f.name}: pcap verify`);
      else assert.notEqual(got.verdict, 'malformed', `${f.name}: pcap verify ${JSON.stringify(got)}`);
    });
    // Where the form is still readable its fields are shown: the compact label on the SYN.
    const syn = rows[FRAMES.findIndex((f) => f.malformed?.[0] === 'compact-on-syn')]!;
    assert.deepEqual(
      [syn['labelwall.profile'], syn['labelwall.form'], syn['labelwall.key_id'], syn['tcp.flags.syn']],
      [['v1'], ['compact'], ['4'], [syn['tcp.flags.syn'][0]]],
    );
    assert.equal(bool(syn['tcp.flags.syn'][0]), 1);
    // Both labels of the two-label segment are shown, the second one flagged.
    const two = rows[FRAMES.findIndex((f) => f.malformed?.[0] === 'duplicate-label')]!;
    assert.deepEqual(
      [two['labelwall.key_id'], two['labelwall.tag']],
      [
        ['1', '2'],
        ['300', '22'],
      ],
    );
    // The bad version and the bad length are no profile at all.
    for (const reason of ['bad-label-version', 'bad-label-length']) {
      assert.deepEqual(rows[FRAMES.findIndex((f) => f.malformed?.[0] === reason)]!['labelwall.profile'], [], reason);
    }
  });

  test('a label cut off by the capture (snap length) is said to be cut, not malformed', () => {
    const spec = join(dir, 'cut.json');
    const whole = join(dir, 'cut-whole.pcap');
    const cut = join(dir, 'cut.pcap');
    const frame: Frame = {
      name: 'cut',
      ...tcp4,
      time: T0,
      seq: 1,
      ack: 1,
      flags: 'A',
      options: [v1({ form: 'full', key_id: 1, tag: 300 })],
    };
    writeFileSync(spec, JSON.stringify({ out: whole, frames: [frame] }));
    ok(run(PYTHON, [CRAFT, spec]), 'craft the frame');
    // Ethernet 14 + IPv4 20 + TCP 20: 10 of the label's 20 bytes are captured.
    ok(run('editcap', ['-s', '64', whole, cut]), 'editcap -s 64');
    const [w] = fields(whole);
    assert.deepEqual([w!['labelwall.profile'], w!['labelwall.malformed']], [['v1'], []], 'the control: whole, it is a v1 label');
    const [c] = fields(cut);
    assert.deepEqual([c!['labelwall.profile'], c!['labelwall.malformed']], [[], []]);
    assert.ok(
      c!['_ws.expert.message'].some((m) => /label cut off by the end of the capture/.test(m)),
      c!['_ws.expert.message'].join('\n'),
    );
  });

  test('v1 by the real labeller (src/label/v1.ts via labelFrame): the fields are what the v1 verifier reads', async () => {
    const profile = getProfile('v1');
    const key = loadKeyFile(join(dir, 'demo.key'));
    const keys = Array.from({ length: 8 }, (_, k) => key.withKeyId(k));
    // Unlabelled inputs the stack could have sent: the handshake with every option, and data
    // whose options leave room for the full form only after trimming, or for the compact one.
    const plainSpec = join(dir, 'plain.json');
    const plainPcap = join(dir, 'plain.pcap');
    const plain: Frame[] = [
      {
        name: 'SYN',
        ...tcp4,
        time: T0,
        seq: 7,
        ack: 0,
        flags: 'S',
        options: [{ mss: 1460 }, { sackok: true }, { ts: [1, 0] }, { nop: true }, { wscale: 7 }],
      },
      {
        name: 'SYN-ACK',
        ...tcp6,
        time: T0 + 0.5,
        seq: 70,
        ack: 8,
        flags: 'SA',
        options: [{ mss: 1440 }, { sackok: true }, { ts: [2, 1] }, { nop: true }, { wscale: 9 }],
      },
      {
        name: 'data with 3 SACK blocks',
        ...tcp4,
        time: T0 + 1,
        seq: 8,
        ack: 71,
        flags: 'PA',
        payload: '68656c6c6f',
        options: [
          { nop: true },
          { nop: true },
          { ts: [3, 2] },
          { nop: true },
          { nop: true },
          {
            sack: [
              [100, 200],
              [300, 400],
              [500, 600],
            ],
          },
        ],
      },
      {
        name: 'data with timestamps, a SACK block and another experiment: 24 bytes, room for the compact form only',
        ...tcp6,
        time: T0 + 1.5,
        seq: 71,
        ack: 13,
        flags: 'PA',
        payload: '776f726c64',
        options: [{ nop: true }, { nop: true }, { ts: [4, 3] }, { nop: true }, { nop: true }, { sack: [[100, 200]] }, { raw: 'fe04abcd' }],
      },
      {
        name: 'ACK with timestamps',
        ...tcp6,
        time: T0 + 2,
        seq: 71,
        ack: 13,
        flags: 'A',
        options: [{ nop: true }, { nop: true }, { ts: [4, 3] }],
      },
    ];
    writeFileSync(plainSpec, JSON.stringify({ out: plainPcap, frames: plain }));
    ok(run(PYTHON, [CRAFT, plainSpec]), 'craft unlabelled frames');

    const out = join(dir, 'v1-real.pcap');
    const w = await PcapWriter.create(out, { linktype: 1, nanosecond: true });
    const tags = [300, 0, 22, 65535];
    const nats = [0, NAT_SRC | NAT_PORTS, NAT_DST, NAT_SRC | NAT_DST | NAT_PORTS];
    const expected: Array<VerifyResult | undefined> = [];
    let n = 0;
    for (const file of [join(FIXTURES, 'demo.pcap'), plainPcap]) {
      for await (const rec of readCapture(file)) {
        assert.equal(rec.linktype, 1);
        const timeMs = rec.tsSec * 1000 + (rec.tsFrac * 1000) / rec.tsUnitsPerSec;
        const ctx = { timeMs, tag: tags[n % 4]!, nat: nats[n % 4]! };
        const r = labelFrame(profile, rec.linktype, rec.data, keys[(n * 3) % 8]!, ctx);
        const data = r.labelled ? r.frame : rec.data;
        const v = verifyFrame(profile, rec.linktype, data, keys, { timeMs, allowNat: NAT_SRC | NAT_DST | NAT_PORTS });
        if (r.labelled) assert.equal(v.verdict, 'valid', `frame ${n + 1}: the v1 verifier: ${JSON.stringify(v)}`);
        expected.push(r.labelled ? ({ ...v, epoch: Math.floor(timeMs / 16_000) } as VerifyResult) : undefined);
        await w.write(data, rec, data.length);
        n++;
      }
    }
    await w.close();

    const rows = fields(out);
    assert.equal(rows.length, expected.length);
    let full = 0;
    let compact = 0;
    rows.forEach((row, i) => {
      const v = expected[i] as (VerifyResult & { epoch: number }) | undefined;
      const frame = `frame ${i + 1}`;
      if (!v) {
        assert.deepEqual(noneOfOurs(row), [], `${frame}: not labelled, nothing shown`);
        return;
      }
      const len = v.compact ? 16 : 20;
      // The label's bytes as tshark's own TCP dissector sees them, found by kind and ExID.
      const opts = Buffer.from(row['tcp.options'][0]!, 'hex');
      let at = 0;
      while (at < opts.length && !(opts[at] === 253 && opts.readUInt16BE(at + 2) === 0x4677)) at += opts[at] === 1 ? 1 : opts[at + 1]!;
      assert.ok(at < opts.length, `${frame}: label among ${row['tcp.options'][0]}`);
      assert.deepEqual(
        shown(row, 0),
        {
          profile: 'v1',
          form: v.compact ? 'compact' : 'full',
          length: len,
          key_id: v.keyId,
          s: v.nat! & NAT_SRC ? 1 : 0,
          d: v.nat! & NAT_DST ? 1 : 0,
          p: v.nat! & NAT_PORTS ? 1 : 0,
          epoch8: v.epoch % 256,
          epoch: v.epoch,
          tag: v.tag,
          mac: opts.subarray(at + 8, at + len).toString('hex'),
        },
        frame,
      );
      assert.deepEqual(row['labelwall.malformed'], [], frame);
      if (v.compact) compact++;
      else full++;
    });
    assert.ok(full >= 5 && compact >= 1, `full ${full}, compact ${compact}: both forms seen`);
    assert.ok(new Set(expected.filter(Boolean).map((v) => v!.keyId)).size >= 4, 'several key ids');
  });

  test('v1 by the real `labelwall pcap label --profile v1` (key id 5, tag 300, NAT source,ports): fields match pcap verify', () => {
    const key = join(dir, 'demo.key');
    const out = join(dir, 'v1-cli.pcap');
    const r = run(process.execPath, [
      LABELWALL_BIN,
      'pcap',
      'label',
      '--profile',
      'v1',
      '--key-file',
      `5=${key}`,
      '--tag',
      '300',
      '--nat',
      'source,ports',
      join(FIXTURES, 'demo.pcap'),
      out,
    ]);
    const summary = ok(r, 'labelwall pcap label --profile v1') + r.stderr;
    const m = /(\d+) labelled \(v1/.exec(summary);
    assert.ok(m, summary);
    const v = run(process.execPath, [
      LABELWALL_BIN,
      'pcap',
      'verify',
      '--profile',
      'v1',
      '--allow-nat',
      'source,ports',
      '--key-file',
      `5=${key}`,
      '--json',
      out,
    ]);
    const verdicts = new Map<number, VerifyResult>();
    for (const line of v.stdout.trim().split('\n')) {
      const o = JSON.parse(line) as VerifyResult & { frame?: number };
      if (o.frame !== undefined) verdicts.set(o.frame, o);
    }
    const cfg = join(dir, 'web.yaml');
    writeFileSync(cfg, 'tags:\n  web: 300\n');
    const rows = fields(out, ['-o', `labelwall.tags_file:${cfg}`]);
    const labelled = rows.filter((row) => row['labelwall.profile'].length > 0);
    assert.equal(labelled.length, Number(m[1]), 'frames shown as labelled = frames the tool labelled');
    for (const row of rows) {
      const frame = Number(row['frame.number'][0]);
      const vr = verdicts.get(frame);
      assert.ok(vr, `pcap verify has frame ${frame}`);
      if (row['labelwall.profile'].length === 0) {
        assert.notEqual(vr.verdict, 'valid', `frame ${frame}: the dissector shows no label, pcap verify finds none`);
        assert.deepEqual(noneOfOurs(row), [], `frame ${frame}`);
        continue;
      }
      assert.equal(vr.verdict, 'valid', `frame ${frame}: ${JSON.stringify(vr)}`);
      // One label each, even where the segment also carries kind 253 with another ExID (frame 6).
      const s0 = shown(row, 0);
      assert.deepEqual(row['labelwall.profile'], ['v1'], `frame ${frame}`);
      assert.deepEqual(
        [s0.form, s0.key_id, s0.tag, s0.s, s0.d, s0.p, row['labelwall.tag_name']],
        [vr.compact ? 'compact' : 'full', vr.keyId, vr.tag, 1, 0, 1, ['web']],
        `frame ${frame}: dissector vs pcap verify ${JSON.stringify(vr)}`,
      );
      assert.deepEqual([vr.keyId, vr.tag, vr.nat], [5, 300, NAT_SRC | NAT_PORTS], `frame ${frame}: what was asked for`);
      assert.ok(s0.epoch !== undefined, `frame ${frame}: epoch resolved from the capture time`);
      const opt = row['tcp.options'][0]!;
      const at = opt.indexOf(`fd${(s0.length as number).toString(16)}4677`);
      assert.ok(at >= 0 && at % 2 === 0, `frame ${frame}: label in ${opt}`);
      assert.equal(s0.mac, opt.slice(at + 16, at + 2 * (s0.length as number)), `frame ${frame}: MAC = option bytes 8..`);
    }
  });

  test('tags: the tags file names the tags (top-level tags: only), a bad one is reported by line', () => {
    const cfg = join(dir, 'labelwall.yaml');
    writeFileSync(
      cfg,
      [
        '# a labelwall config: only the top-level tags: mapping is read by the dissector',
        'keys:',
        '  site: /etc/labelwall/site.key',
        'agent:',
        '  key: site',
        '  tags: { decoy: 300 }   # not top-level: ignored',
        '  egress:',
        '    rules:',
        '      - { name: web, dst: { ports: [443] }, action: allow, tag: web }',
        'tags:   # names for app tags',
        '  web: 300      # HTTPS clients',
        '',
        '  "ssh": 22',
        "  'all: ones': 0xffff",
        'verifier:',
        '  rules: []',
        '',
      ].join('\r\n'),
    );
    const rows = fields(v1Pcap, ['-o', `labelwall.tags_file:${cfg}`]);
    const names: Record<number, string> = { 300: 'web', 22: 'ssh', 65535: 'all: ones' };
    let named = 0;
    FRAMES.forEach((f, i) => {
      const row = rows[i]!;
      const want = row['labelwall.tag'].flatMap((t) => (names[Number(t)] ? [names[Number(t)]!] : []));
      assert.deepEqual(row['labelwall.tag_name'], want, `${f.name}: tags ${row['labelwall.tag'].join(',')}`);
      named += want.length;
    });
    assert.ok(named >= 6, `tag names shown: ${named}`);

    const flow = join(dir, 'flow.yaml');
    writeFileSync(flow, 'tags: {web: 300, ssh: 22}\n');
    const flowRows = fields(v1Pcap, ['-o', `labelwall.tags_file:${flow}`]);
    assert.deepEqual(flowRows[0]!['labelwall.tag_name'], ['web']);
    assert.deepEqual(flowRows[1]!['labelwall.tag_name'], ['ssh']);

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'agent: {}\ntags:\n  web: 300\n  ssh: 70000\n');
    const args = [
      '-X',
      `lua_script:${SCRIPT}`,
      '-o',
      `labelwall.tags_file:${bad}`,
      '-r',
      v1Pcap,
      '-T',
      'fields',
      '-e',
      'labelwall.tag_name',
    ];
    const r = tshark(args);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4: tag "ssh": 70000 is outside 1-65535`));
    assert.equal(r.stdout.trim(), '', 'a bad tags file names nothing');
  });

  test('random option bytes around our ExID never raise a Lua error', () => {
    // Seeded (xorshift32), so a failure can be reproduced.
    let x = 0x9e3779b9;
    const rnd = (n: number): number => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const frames: Frame[] = [];
    for (let k = 0; k < 300; k++) {
      const words = 1 + rnd(10);
      const bytes = Array.from({ length: words * 4 }, () => rnd(256));
      // Mostly our kind and ExID at a random place, with any length (truncated, 0, 1, huge).
      const at = rnd(Math.max(1, words * 4 - 3));
      if (rnd(8) !== 0) {
        bytes.fill(1, 0, at); // NOPs before it, so that the walk reaches it
        bytes[at] = 253;
        bytes[at + 1] = rnd(4) === 0 ? rnd(256) : [16, 20, 40, 2, 3, 4, 17][rnd(7)]!;
        bytes[at + 2] = 0x46;
        bytes[at + 3] = 0x77;
      }
      const raw = Buffer.from(bytes).toString('hex');
      frames.push({
        name: `random ${k}`,
        ...(k % 2 ? tcp4 : tcp6),
        time: T0 + k,
        seq: k,
        ack: 0,
        flags: rnd(2) ? 'S' : 'A',
        options: [{ raw }],
      });
    }
    const file = join(dir, 'random.pcap');
    const spec = join(dir, 'random.json');
    writeFileSync(spec, JSON.stringify({ out: file, frames }));
    ok(run(PYTHON, [CRAFT, spec]), 'craft random frames');
    const v = ok(tshark(['-X', `lua_script:${SCRIPT}`, '-r', file, '-V']), 'tshark -V on random options');
    assert.doesNotMatch(v, /Lua Error/);
    const n = (v.match(/^labelwall label /gm) ?? []).length;
    assert.ok(n > 100, `labels seen among the random frames: ${n}`);
  });

  test('installed as a personal Lua plugin (~/.local/lib/wireshark/plugins/) it works without -X', () => {
    const home = join(dir, 'home');
    const plugins = join(home, '.local', 'lib', 'wireshark', 'plugins');
    mkdirSync(plugins, { recursive: true });
    copyFileSync(SCRIPT, join(plugins, 'labelwall.lua'));
    const r = tshark(['-r', compatPcap, '-T', 'fields', '-e', 'labelwall.profile'], {
      ...process.env,
      HOME: home,
      XDG_CONFIG_HOME: join(home, '.config'),
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.split('\n').filter((l) => l === 'compat').length, labelledCount);
  });

  test('controls: no script, no fields; other experiments are not labels; TCP dissection unchanged', () => {
    // Without the script tshark does not know the fields at all.
    const plain = tshark(['-r', compatPcap, '-T', 'fields', '-e', 'labelwall.profile']);
    assert.notEqual(plain.status, 0);
    assert.match(plain.stderr, /labelwall\.profile/);
    const plainV = ok(tshark(['-r', v1Pcap, '-V']), 'tshark -V without the script');
    assert.doesNotMatch(plainV, /labelwall/);

    // With it: kind 253 with another ExID, or kind 254 with ours, is not ours.
    const rows = fields(v1Pcap);
    let controls = 0;
    FRAMES.forEach((f, i) => {
      if (!f.name.startsWith('control')) return;
      assert.deepEqual(noneOfOurs(rows[i]!), [], f.name);
      assert.ok(rows[i]!['tcp.options'].length > 0, `${f.name}: tshark sees its option`);
      controls++;
    });
    assert.equal(controls, 3);
    // ... while every frame with our label is called ours (the control would notice a dissector
    // that never matches).
    assert.equal(rows.filter((r) => noneOfOurs(r).length > 0).length, FRAMES.length - controls);

    // TCP's own dissection is the same with and without the script: every tcp field, and the
    // whole -V text once the labelwall tree is taken out.
    for (const file of [compatPcap, v1Pcap]) {
      const tcpFields = [
        'tcp.srcport',
        'tcp.dstport',
        'tcp.seq_raw',
        'tcp.ack_raw',
        'tcp.flags',
        'tcp.len',
        'tcp.hdr_len',
        'tcp.options',
        'tcp.option_kind',
        'tcp.option_len',
        'tcp.options.experimental.exid',
        'tcp.options.experimental.data',
        'tcp.analysis.flags',
        'tcp.checksum.status',
      ];
      const fx = (withScript: boolean): string =>
        ok(
          tshark([
            ...(withScript ? ['-X', `lua_script:${SCRIPT}`] : []),
            '-r',
            file,
            '-T',
            'fields',
            ...tcpFields.flatMap((f) => ['-e', f]),
          ]),
          `tcp fields of ${file}`,
        );
      assert.equal(fx(true), fx(false), `tcp fields of ${file}`);
      const withV = ok(tshark(['-X', `lua_script:${SCRIPT}`, '-r', file, '-V']), '-V with the script');
      const withoutV = ok(tshark(['-r', file, '-V']), '-V without the script');
      // The labelwall tree is top level (a postdissector): its header line and indented lines.
      const stripped = withV.replace(/^labelwall label .*\n(?: .*\n)*/gm, '');
      assert.notEqual(stripped, withV, `${file}: the script added its tree`);
      assert.equal(stripped, withoutV, `${file}: -V text outside the labelwall tree`);
    }
  });
});

describe('Wireshark dissector on a capture of the real labelwall agent', { timeout: 180_000 }, () => {
  let topo: Topology;
  let dir: string;
  let key: { path: string; hex: string };
  let agent: Daemon | undefined;

  before(async () => {
    dir = makeTempDir('lw-wireshark-agent-');
    key = writeKey(dir, 'site');
    topo = await createTopology(standardTopology({ subnetBase: 241 }));
  });

  after(async () => {
    await agent?.stop();
    await topo?.destroy();
  });

  test('compat agent: every TCP segment from pc shows profile compat, as pcap verify finds them valid', async () => {
    const http = await startHttpServer(topo, 'srv', { port: 8080 });
    agent = await startDaemon(topo, 'pc', 'agent', ['--profile', 'compat', '--key-file', key.path, '--queue-base', '70'], dir);
    const pcap = join(dir, 'agent.pcap');
    // --immediate-mode: a small capture would otherwise still sit in libpcap's buffer at SIGINT.
    const cap = topo.spawn('mb', [
      'tcpdump',
      '--immediate-mode',
      '-i',
      topo.iface('mb', 'pc').name,
      '-nn',
      '-U',
      '-s',
      '0',
      '-w',
      pcap,
      'tcp',
    ]);
    await cap.waitForOutput(/listening on/, 10_000, 'stderr');
    const res = await httpRequests(topo, 'pc', http.url(topo.addr('srv', 6)), [{ method: 'GET', path: '/blob/100000' }]);
    const res4 = await httpRequests(topo, 'pc', http.url(topo.addr('srv')), [{ method: 'POST', path: '/echo', body: blob(50_000, 'ws') }]);
    assert.equal(res[0]!.status, 200);
    assert.equal(firstDifference(res[0]!.body, blob(100_000)), -1);
    assert.equal(res4[0]!.status, 200);
    await new Promise((r) => setTimeout(r, 300));
    await cap.stop(3000, 'SIGINT');
    await agent.stop();
    agent = undefined;
    await http.stop();

    const args = [
      '-X',
      `lua_script:${SCRIPT}`,
      '-r',
      pcap,
      '-T',
      'fields',
      '-E',
      'separator=/t',
      '-E',
      'occurrence=a',
      '-E',
      'aggregator=|',
    ];
    for (const f of ['frame.number', 'ip.src', 'ipv6.src', 'tcp.options', 'labelwall.profile', 'labelwall.mac']) args.push('-e', f);
    const rows = ok(tshark(args), 'tshark on the agent capture')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split('\t'));
    const fromPc = rows.filter((r) => r[1] === topo.addr('pc') || r[2] === topo.addr('pc', 6));
    const fromSrv = rows.filter((r) => r[1] === topo.addr('srv') || r[2] === topo.addr('srv', 6));
    assert.ok(
      fromPc.length > 20 && fromSrv.length > 20,
      `segments captured: ${fromPc.length} from pc, ${fromSrv.length} from srv\n${cap.describe()}`,
    );
    for (const r of fromPc) {
      assert.equal(r[4], 'compat', `frame ${r[0]} from pc`);
      assert.equal(r[3]!.slice(0, 16), 'fd28467700000000', `frame ${r[0]}: the agent's label is the only option`);
      assert.equal(r[5], r[3]!.slice(16, 80), `frame ${r[0]}: MAC = option bytes 8-39`);
    }
    // srv has no agent: its segments carry no label and the dissector says nothing about them.
    for (const r of fromSrv) assert.equal(r[4], '', `frame ${r[0]} from srv`);

    const v = run(process.execPath, [LABELWALL_BIN, 'pcap', 'verify', pcap, '--key-file', key.path, '--json']);
    const summary = (JSON.parse(v.stdout.trim().split('\n').pop() ?? '{}') as { summary: Record<string, number> }).summary;
    assert.equal(summary.valid, fromPc.length, `pcap verify: ${JSON.stringify(summary)}`);
    assert.equal(summary.unlabelled, fromSrv.length, `pcap verify: ${JSON.stringify(summary)}`);
  });
});
