// The koffi bindings and x86_64 struct layouts, checked on an AF_UNIX datagram socketpair
// (no root needed): recvmmsg fills the preallocated slots, reports lengths and MSG_TRUNC.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import koffi from 'koffi';
import {
  EAGAIN,
  MSG_DONTWAIT,
  MSG_TRUNC,
  MSG_WAITFORONE,
  RecvVector,
  closeFd,
  describeErrno,
  errno,
  nativeAlloc,
  sendPtr,
  setRecvTimeout,
} from '../../src/sys/libc.js';

const lib = koffi.load('libc.so.6');
const socketpair = lib.func('int socketpair(int, int, int, _Out_ int *sv)') as (d: number, t: number, p: number, sv: Int32Array) => number;
const AF_UNIX = 1;
const SOCK_DGRAM = 2;

function pair(): [number, number] {
  const sv = new Int32Array(2);
  assert.equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0, describeErrno(errno()));
  return [sv[0]!, sv[1]!];
}

describe('libc bindings', () => {
  const fds: number[] = [];
  after(() => fds.forEach(closeFd));

  it('recvmmsg takes every waiting datagram into its own slot, with lengths and MSG_TRUNC', () => {
    const [a, b] = pair();
    fds.push(a, b);
    const out = nativeAlloc(300);
    const sizes = [5, 100, 40, 300];
    for (const [i, n] of sizes.entries()) {
      out.buf.fill(i + 1, 0, n);
      assert.equal(sendPtr(a, out.ptr, n), n);
    }
    const rv = new RecvVector(8, 64);
    const n = rv.recv(b, MSG_WAITFORONE);
    assert.equal(n, 4);
    for (const [i, size] of sizes.entries()) {
      const got = Math.min(size, 64);
      assert.equal(rv.msgLen(i), got, `slot ${i} length`);
      assert.equal((rv.msgFlags(i) & MSG_TRUNC) !== 0, size > 64, `slot ${i} MSG_TRUNC`);
      assert.ok(
        rv.bufs[i]!.subarray(0, got).every((x) => x === i + 1),
        `slot ${i} content`,
      );
    }
    rv.free();
    out.free();
  });

  it('an empty socket: -EAGAIN with MSG_DONTWAIT, and after SO_RCVTIMEO when blocking', () => {
    const [a, b] = pair();
    fds.push(a, b);
    const rv = new RecvVector(2, 64);
    assert.equal(rv.recv(b, MSG_DONTWAIT), -EAGAIN);
    setRecvTimeout(b, 100);
    const t0 = Date.now();
    assert.equal(rv.recv(b, MSG_WAITFORONE), -EAGAIN);
    const waited = Date.now() - t0;
    assert.ok(waited >= 80 && waited < 1000, `blocked ${waited} ms`);
    rv.free();
  });

  it('errno of a failed call is read through koffi', () => {
    const m = nativeAlloc(8);
    assert.ok(sendPtr(-1, m.ptr, 8) < 0);
    assert.equal(errno(), 9); // EBADF
    assert.match(describeErrno(9), /EBADF/);
    m.free();
  });
});
