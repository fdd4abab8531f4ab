// The pure parts of running as a service: NOTIFY_SOCKET → struct sockaddr_un (path and abstract
// names), and the start-up checks of what the host provides (iptables tools, libcrypto, NFQUEUE).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { notifySocketAddress, NotifySocketError, ServiceNotifier } from '../../src/daemon/notify.js';
import { libcryptoWarning, missingToolsProblem, onPath, queueBindHint, requiredTools } from '../../src/daemon/deps.js';

test('NOTIFY_SOCKET: a path is NUL-terminated, an abstract name starts with NUL and is not', () => {
  const p = notifySocketAddress('/run/systemd/notify');
  assert.equal(p.readUInt16LE(0), 1); // AF_UNIX
  assert.equal(p.length, 2 + '/run/systemd/notify'.length + 1);
  assert.equal(p.subarray(2).toString('latin1'), '/run/systemd/notify\0');
  const a = notifySocketAddress('@lw/notify');
  assert.equal(a.length, 2 + 1 + 'lw/notify'.length);
  assert.equal(a[2], 0);
  assert.equal(a.subarray(3).toString('latin1'), 'lw/notify');
});

test('NOTIFY_SOCKET: relative, empty abstract and too long names are refused with the reason', () => {
  assert.throws(() => notifySocketAddress('run/notify'), NotifySocketError);
  assert.throws(() => notifySocketAddress('@'), /not a valid UNIX socket name/);
  assert.throws(() => notifySocketAddress(`/${'x'.repeat(107)}`), /at most 107 bytes/);
  assert.equal(notifySocketAddress(`/${'x'.repeat(106)}`).length, 110);
});

test('ServiceNotifier: removes NOTIFY_SOCKET from the environment; without one it sends nothing', () => {
  const errors: string[] = [];
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: 'relative' };
  const n = new ServiceNotifier(env, (m) => errors.push(m));
  assert.equal(env.NOTIFY_SOCKET, undefined);
  assert.equal(n.enabled, false);
  assert.match(errors[0] ?? '', /neither an absolute path nor an abstract name/);
  const none = new ServiceNotifier({}, (m) => errors.push(m));
  none.send('READY=1');
  assert.equal(none.enabled, false);
  assert.equal(errors.length, 1);
});

test('runtime check: the iptables tools of the families in use, found on PATH', () => {
  assert.deepEqual(requiredTools([4, 6]), ['iptables', 'iptables-restore', 'ip6tables', 'ip6tables-restore']);
  const have = new Set(['/usr/sbin/iptables', '/usr/sbin/iptables-restore']);
  const exec = (f: string): boolean => have.has(f);
  assert.equal(onPath('iptables', '/usr/bin:/usr/sbin', exec), true);
  assert.equal(onPath('iptables', 'relative:/usr/bin', exec), false);
  assert.equal(missingToolsProblem([4], '/usr/bin:/usr/sbin', exec), undefined);
  assert.match(
    missingToolsProblem([4, 6], '/usr/bin:/usr/sbin', exec) ?? '',
    /^ip6tables, ip6tables-restore not found on PATH \(\/usr\/bin:\/usr\/sbin\): install the Debian package iptables/,
  );
  assert.match(missingToolsProblem([4], undefined, exec) ?? '', /not found on PATH \(empty\)/);
});

test('runtime check: libcrypto warning, NFQUEUE bind hints', () => {
  assert.equal(libcryptoWarning(true, false), undefined);
  assert.equal(libcryptoWarning(false, true), undefined);
  assert.match(libcryptoWarning(false, false) ?? '', /libcrypto\.so\.3 cannot be loaded \(Debian package libssl3\)/);
  assert.match(queueBindHint('bind: EPERM (Operation not permitted)') ?? '', /CAP_NET_ADMIN/);
  assert.match(queueBindHint('bind: EINVAL', '/nonexistent/nfnetlink_queue') ?? '', /modprobe nfnetlink_queue/);
  assert.equal(queueBindHint('bind: EBUSY', '/proc/self/status'), undefined);
});
