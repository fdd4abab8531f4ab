import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  buildDiagRequest,
  parseDiagReply,
  NLMSG_HDR_LEN,
  INET_DIAG_MSG_LEN,
  SOCK_DIAG_BY_FAMILY,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  IPPROTO_TCP,
  IPPROTO_RAW,
} from '../../src/identity/sockdiag-proto.js';
import { parseProcNet } from '../../src/identity/procnet.js';
import { parseCgroup, parsePasswd, socketInode, Lru } from '../../src/identity/procfs.js';
import { SocketIndexSnapshot } from '../../src/identity/socket-index.js';
import { recorderProgram, cgroup2Root } from '../../src/identity/bpf.js';

test('inet_diag_req_v2: exact lookup layout', () => {
  const b = buildDiagRequest(
    {
      family: 4,
      protocol: IPPROTO_TCP,
      states: 0xffffffff,
      id: { src: new Uint8Array([10, 0, 0, 1]), sport: 40000, dst: new Uint8Array([10, 0, 0, 2]), dport: 443 },
    },
    7,
  );
  assert.equal(b.length, 16 + 56);
  assert.equal(b.readUInt32LE(0), 72);
  assert.equal(b.readUInt16LE(4), SOCK_DIAG_BY_FAMILY);
  assert.equal(b.readUInt16LE(6), NLM_F_REQUEST, 'no DUMP flag on an exact lookup');
  assert.equal(b.readUInt32LE(8), 7);
  assert.equal(b[16], 2); // AF_INET
  assert.equal(b[17], 6);
  assert.equal(b.readUInt32LE(20), 0xffffffff);
  assert.equal(b.readUInt16BE(24), 40000);
  assert.equal(b.readUInt16BE(26), 443);
  assert.deepEqual([...b.subarray(28, 32)], [10, 0, 0, 1]);
  assert.deepEqual([...b.subarray(44, 48)], [10, 0, 0, 2]);
  assert.equal(b.readUInt32LE(64), 0xffffffff, 'INET_DIAG_NOCOOKIE');
  assert.equal(b.readUInt32LE(68), 0xffffffff);
});

test('inet_diag_req_v2: dump with raw protocol', () => {
  const b = buildDiagRequest({ family: 6, protocol: IPPROTO_RAW, rawProtocol: 58, states: 1 << 7 }, 1);
  assert.equal(b.readUInt16LE(6), NLM_F_REQUEST | NLM_F_DUMP);
  assert.equal(b[16], 10);
  assert.equal(b[17], 255);
  assert.equal(b[19], 58);
  assert.equal(b.readUInt32LE(20), 128);
});

function diagMsg(s: {
  family: 4 | 6;
  state: number;
  sport: number;
  dport: number;
  src: number[];
  dst: number[];
  uid: number;
  inode: number;
  cookie: bigint;
}): Buffer {
  const b = Buffer.alloc(NLMSG_HDR_LEN + INET_DIAG_MSG_LEN);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
  const o = NLMSG_HDR_LEN;
  b[o] = s.family === 4 ? 2 : 10;
  b[o + 1] = s.state;
  b.writeUInt16BE(s.sport, o + 4);
  b.writeUInt16BE(s.dport, o + 6);
  b.set(s.src, o + 8);
  b.set(s.dst, o + 24);
  b.writeUInt32LE(Number(s.cookie & 0xffffffffn), o + 44);
  b.writeUInt32LE(Number(s.cookie >> 32n), o + 48);
  b.writeUInt32LE(s.uid, o + 64);
  b.writeUInt32LE(s.inode, o + 68);
  return b;
}

function done(err = 0): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32LE(20, 0);
  b.writeUInt16LE(NLMSG_DONE, 4);
  b.writeInt32LE(err, 16);
  return b;
}

test('inet_diag_msg parse: several messages, DONE, errors', () => {
  const m1 = diagMsg({
    family: 4,
    state: 2,
    sport: 5555,
    dport: 80,
    src: [127, 0, 0, 1],
    dst: [10, 1, 2, 3],
    uid: 1000,
    inode: 4242,
    cookie: 0x1_0000_0002n,
  });
  const m2 = diagMsg({
    family: 6,
    state: 7,
    sport: 53,
    dport: 0,
    src: [...new Array(15).fill(0), 1],
    dst: new Array(16).fill(0),
    uid: 0,
    inode: 7,
    cookie: 9n,
  });
  const r = parseDiagReply(Buffer.concat([m1, m2, done()]));
  assert.equal(r.kind, 'sockets');
  if (r.kind !== 'sockets') return;
  assert.equal(r.done, true);
  assert.equal(r.sockets.length, 2);
  const [a, b] = r.sockets;
  assert.deepEqual(
    { ...a, src: [...a!.src], dst: [...a!.dst] },
    {
      family: 4,
      state: 2,
      sport: 5555,
      dport: 80,
      src: [127, 0, 0, 1],
      dst: [10, 1, 2, 3],
      ifindex: 0,
      cookie: 0x1_0000_0002n,
      uid: 1000,
      inode: 4242,
    },
  );
  assert.equal(b!.family, 6);
  assert.equal(b!.src[15], 1);
  assert.equal(b!.inode, 7);
  // A DONE carrying -ENOENT (no diag handler for the protocol) is an error.
  assert.deepEqual(parseDiagReply(done(-2)), { kind: 'error', errno: 2 });
  const e = Buffer.alloc(36);
  e.writeUInt32LE(36, 0);
  e.writeUInt16LE(NLMSG_ERROR, 4);
  e.writeInt32LE(-2, 16);
  assert.deepEqual(parseDiagReply(e), { kind: 'error', errno: 2 });
  // A partial datagram (no DONE) is not done.
  const p = parseDiagReply(m1);
  assert.ok(p.kind === 'sockets' && !p.done && p.sockets.length === 1);
});

test('property: parseDiagReply never throws on arbitrary bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const r = parseDiagReply(bytes);
      assert.ok(['sockets', 'error', 'malformed'].includes(r.kind));
    }),
    { numRuns: 3000 },
  );
  // Truncated real messages too.
  const m = diagMsg({ family: 4, state: 1, sport: 1, dport: 2, src: [1, 2, 3, 4], dst: [5, 6, 7, 8], uid: 1, inode: 1, cookie: 1n });
  for (let n = 0; n <= m.length; n++) {
    const r = parseDiagReply(m.subarray(0, n));
    if (n < m.length && n >= 16) assert.equal(r.kind, 'malformed', `length ${n}`);
  }
});

test('/proc/net tables: IPv4, IPv6, ping and raw rows', () => {
  const v4 = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
   28: 0100007F:989C 0200000A:0050 01 00000000:00000340 00:00000000 00000000  1000        0 33618 2 000000000252e851 0
  175: 00000000:0001 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 33620 2 000000002173d6da 0
garbage line`;
  const r = parseProcNet(v4, 4);
  assert.equal(r.length, 2);
  assert.deepEqual([...r[0]!.src], [127, 0, 0, 1]);
  assert.equal(r[0]!.sport, 0x989c);
  assert.deepEqual([...r[0]!.dst], [10, 0, 0, 2]);
  assert.equal(r[0]!.dport, 80);
  assert.equal(r[0]!.state, 1);
  assert.equal(r[0]!.uid, 1000);
  assert.equal(r[0]!.inode, 33618);
  assert.equal(r[1]!.sport, 1, 'raw socket: the "port" is the protocol');
  const v6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
   29: 00000000000000000000000001000000:989D 000080FE00000000FF005452C3D20CFE:0035 07 00000000:00000340 00:00000000 00000000     0        0 33619 2 000000005185d22e 0`;
  const r6 = parseProcNet(v6, 6);
  assert.equal(r6.length, 1);
  assert.deepEqual([...r6[0]!.src], [...new Array(15).fill(0), 1], '::1');
  assert.deepEqual([...r6[0]!.dst.subarray(0, 2)], [0xfe, 0x80]);
  assert.equal(r6[0]!.dport, 53);
  assert.deepEqual(parseProcNet(v6, 4), [], 'IPv6 rows are not IPv4 rows');
});

test('cgroup parsing: v2 path, systemd unit, container ids', () => {
  assert.deepEqual(parseCgroup('0::/system.slice/ssh.service\n'), { cgroup: '/system.slice/ssh.service', unit: 'ssh.service' });
  assert.deepEqual(parseCgroup('0::/user.slice/user-1000.slice/session-3.scope\n'), {
    cgroup: '/user.slice/user-1000.slice/session-3.scope',
    unit: 'session-3.scope',
  });
  const id = 'a'.repeat(12) + '0123456789abcdef'.repeat(3) + 'b'.repeat(4);
  assert.equal(id.length, 64);
  assert.deepEqual(parseCgroup(`0::/system.slice/docker-${id}.scope\n`), {
    cgroup: `/system.slice/docker-${id}.scope`,
    unit: `docker-${id}.scope`,
    containerId: id,
  });
  assert.equal(parseCgroup(`0::/docker/${id}\n`).containerId, id);
  assert.equal(parseCgroup(`0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-${id}.scope\n`).containerId, id);
  assert.equal(parseCgroup(`0::/machine.slice/libpod-${id}.scope/container\n`).containerId, id);
  assert.equal(parseCgroup('0::/system.slice/abc.service\n').containerId, undefined);
  // hybrid v1+v2: the v2 line wins; pure v1: the name=systemd line
  assert.equal(parseCgroup('12:cpu:/x\n1:name=systemd:/system.slice/cron.service\n0::/init.scope\n').cgroup, '/init.scope');
  assert.deepEqual(parseCgroup('12:cpu:/x\n1:name=systemd:/system.slice/cron.service\n'), {
    cgroup: '/system.slice/cron.service',
    unit: 'cron.service',
  });
  assert.deepEqual(parseCgroup(''), { cgroup: '' });
});

test('passwd parsing, socket links, LRU bound', () => {
  const m = parsePasswd('root:x:0:0:root:/root:/bin/bash\n# c\nalice:x:1000:1000::/home/a:/bin/sh\nbad\ndup:x:0:0::/:/bin/sh\n');
  assert.equal(m.get(0), 'root', 'first entry for a uid wins');
  assert.equal(m.get(1000), 'alice');
  assert.equal(m.size, 2);
  assert.equal(socketInode('socket:[12345]'), 12345);
  assert.equal(socketInode('pipe:[12345]'), undefined);
  assert.equal(socketInode('/dev/null'), undefined);
  const l = new Lru<number, number>(3);
  for (let i = 0; i < 10; i++) l.set(i, i);
  assert.equal(l.size, 3);
  assert.equal(l.get(6), undefined);
  assert.equal(l.get(7), 7);
  l.set(10, 10); // evicts 8 (7 was just used)
  assert.equal(l.get(8), undefined);
  assert.equal(l.get(7), 7);
});

test('socket index snapshot lookup matches a Map', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 9999 }), fc.integer({ min: 0, max: 99 })), {
        maxLength: 200,
      }),
      fc.integer({ min: 0, max: 51 }),
      (rows, q) => {
        const m = new Map<number, { pid: number; fd: number }[]>();
        for (const [ino, pid, fd] of rows) {
          const l = m.get(ino) ?? [];
          l.push({ pid, fd });
          m.set(ino, l);
        }
        const s = SocketIndexSnapshot.fromMap(m);
        assert.equal(s.size, rows.length);
        const want = (m.get(q) ?? []).map((r) => `${r.pid}/${r.fd}`).sort();
        assert.deepEqual(
          s
            .lookup(q)
            .map((r) => `${r.pid}/${r.fd}`)
            .sort(),
          want,
        );
      },
    ),
  );
});

test('eBPF recorder program shape; cgroup2 mount lookup', () => {
  const p = recorderProgram(42);
  assert.equal(p.length % 8, 0);
  assert.equal(p.length / 8, 16);
  const ld = p.subarray(6 * 8, 7 * 8);
  assert.equal(ld[0], 0x18);
  assert.equal(ld[1], 0x11, 'dst r1, src BPF_PSEUDO_MAP_FD');
  assert.equal(ld.readInt32LE(4), 42);
  assert.equal(p[p.length - 8], 0x95, 'ends with exit');
  const mi =
    '30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n31 25 0:27 / /sys/fs/cgroup/cpu rw shared:11 - cgroup cgroup rw,cpu\n';
  assert.equal(cgroup2Root(mi), '/sys/fs/cgroup/unified');
  assert.equal(cgroup2Root('31 25 0:27 / /sys/fs/cgroup/cpu rw shared:11 - cgroup cgroup rw,cpu\n'), undefined);
});
