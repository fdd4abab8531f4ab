// The eBPF programs of an Attributor live only as long as its process: killed with SIGKILL, it
// leaves no program attached.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listBpfPrograms } from '../../src/identity/bpf.js';
import { createNs, deleteNs, Probe } from './identity-harness.js';

const ours = (): Set<number> =>
  new Set(
    listBpfPrograms()
      .filter((p) => p.name.startsWith('lw_'))
      .map((p) => p.id),
  );

test('SIGKILL of the process detaches and frees its eBPF programs', async () => {
  const ns = createNs();
  try {
    const before = ours();
    const probe = await Probe.start(ns, ['--bpf', 'on']);
    assert.equal(probe.bpf, true, String(probe.bpfError));
    const mine = [...ours()].filter((id) => !before.has(id));
    assert.equal(mine.length, 5, 'sock_create, connect4/6, sendmsg4/6');
    const exited = new Promise((r) => probe.lp.proc.once('exit', r));
    probe.lp.proc.kill('SIGKILL');
    await exited;
    // The kernel releases programs asynchronously once the last link fd is gone.
    let left = mine;
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const now = ours();
      left = mine.filter((id) => now.has(id));
    }
    assert.deepEqual(left, []);
  } finally {
    deleteNs(ns);
  }
});
