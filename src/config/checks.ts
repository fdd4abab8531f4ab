// Semantic checks: what the schema cannot say (CIDR and port syntax, globs and regular
// expressions, references to keys, mark bits, queue ranges, rule names, hook and interfaces).
// They run on whatever parts are well-typed, so every problem shows up in one pass.
import picomatch from 'picomatch';
import { cmdlinePatternError, parseCidr, parsePortRange } from '../util/match.js';
import { DEFAULT_AGENT_MARK, type AgentMarks } from './marks.js';
import { DEFAULT_MARK, type MarkBits } from './model.js';
import { describeValue, nearest, type Add, type Seg } from './messages.js';

export type Obj = Record<string, unknown>;
export const isObject = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const asObj = (v: unknown): Obj | undefined => (isObject(v) ? v : undefined);
const asArr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function checkCidrs(list: unknown, path: Seg[], add: Add): void {
  asArr(list).forEach((c, i) => {
    if (typeof c !== 'string') return;
    const r = parseCidr(c);
    if (!r.ok) add([...path, i], `bad CIDR: ${r.reason}`);
  });
}

function checkPorts(list: unknown, path: Seg[], add: Add): void {
  asArr(list).forEach((p, i) => {
    if (typeof p !== 'string' && typeof p !== 'number') return;
    const r = parsePortRange(p);
    if (!r.ok) add([...path, i], `bad port: ${r.reason}`);
  });
}

function checkGlob(v: unknown, path: Seg[], add: Add): void {
  if (typeof v !== 'string' || v === '') return;
  try {
    picomatch.makeRe(v, { dot: true, strictBrackets: true });
  } catch (e) {
    add(path, `bad glob "${v}": ${(e as Error).message}`);
  }
}

function checkKeyRef(name: unknown, keys: Obj, path: Seg[], add: Add): void {
  if (typeof name !== 'string') return;
  if (Object.prototype.hasOwnProperty.call(keys, name)) return;
  const defined = Object.keys(keys);
  const near = nearest(name, defined);
  const tail = near !== undefined ? ` (did you mean "${near}"?)` : defined.length > 0 ? ` (defined: ${defined.join(', ')})` : ' (the keys section defines none)';
  add(path, `key "${name}" is not defined under keys${tail}`);
}

function parseMarkValue(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  if (!/^(0x[0-9a-fA-F]{1,8}|\d{1,10})$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffffffff ? n : undefined;
}

function checkQueues(section: Obj, path: Seg[], add: Add): void {
  const q = section.queues;
  const b = section.queue_base;
  const queues = typeof q === 'number' && Number.isInteger(q) ? q : 1;
  // A base or count outside its own range is the schema's to report.
  if (typeof b === 'number' && Number.isInteger(b) && b <= 65535 && queues <= 64 && b + queues - 1 > 65535) {
    add([...path, 'queue_base'], `queues ${b}..${b + queues - 1} run past the last queue number 65535`);
  }
}

/**
 * agent.mark: each value non-zero, no bit shared between two of them, and none inside the
 * verifier's mask (configured or default): on a host that runs both, the verifier takes a packet
 * with a bit of its mask set as already judged, so an agent bit there would let packets by.
 */
function checkAgentMarks(agent: Obj | undefined, verifier: Obj | undefined, add: Add): void {
  const given = asObj(agent?.mark);
  const vmark = asObj(verifier?.mark);
  if (!given && vmark?.mask === undefined) return; // both defaults: disjoint by construction
  const vals: Partial<Record<keyof AgentMarks, number>> = {};
  for (const k of ['done', 'deny', 'allow'] as const) {
    const raw = given?.[k];
    if (raw === undefined) vals[k] = DEFAULT_AGENT_MARK[k];
    else if (typeof raw === 'number' || typeof raw === 'string') {
      const n = parseMarkValue(raw);
      if (n === undefined) add(['agent', 'mark', k], `${describeValue(raw)} is not a 32-bit unsigned integer`);
      else if (n === 0) add(['agent', 'mark', k], 'mark value must not be 0 (0 is indistinguishable from "not marked")');
      else vals[k] = n;
    }
  }
  const hex = (n: number): string => `0x${n.toString(16)}`;
  const seen: Array<[keyof AgentMarks, number]> = [];
  for (const k of ['done', 'deny', 'allow'] as const) {
    const v = vals[k];
    if (v === undefined) continue;
    const clash = seen.find(([, o]) => (o & v) !== 0);
    if (clash) add(['agent', 'mark', k], `${hex(v)} shares bits ${hex((clash[1] & v) >>> 0)} with agent.mark.${clash[0]} (each mark needs bits of its own)`);
    seen.push([k, v]);
  }
  const vm = vmark?.mask === undefined ? DEFAULT_MARK.mask : parseMarkValue(vmark.mask);
  if (vm === undefined || vm === 0) return; // reported with verifier.mark
  const defaults: string[] = [];
  for (const [k, v] of seen) {
    if ((v & vm) === 0) continue;
    if (given?.[k] !== undefined) {
      add(['agent', 'mark', k], `${hex(v)} overlaps the verifier's mark mask ${hex(vm)}: a verifier on the same host would take the agent's packets as already judged`);
    } else defaults.push(`${k} ${hex(v)}`);
  }
  if (defaults.length > 0) {
    add(['verifier', 'mark', 'mask'], `${hex(vm)} overlaps the agent's default marks (${defaults.join(', ')}): set agent.mark to bits outside the mask`);
  }
}

/** The longest path a UNIX socket can have (sun_path holds 108 bytes with the NUL). */
const MAX_SOCKET_PATH = 107;

export function semanticChecks(data: Obj, add: Add, flagAt: (path: readonly Seg[]) => string | undefined): void {
  const control = asObj(data.control);
  if (typeof control?.socket === 'string' && Buffer.byteLength(control.socket) > MAX_SOCKET_PATH) {
    add(['control', 'socket'], `is ${Buffer.byteLength(control.socket)} bytes long; a UNIX socket path has at most ${MAX_SOCKET_PATH}`);
  }
  checkAgentMarks(asObj(data.agent), asObj(data.verifier), add);
  const keys = asObj(data.keys) ?? {};
  const agent = asObj(data.agent);
  if (agent) {
    if (agent.key !== undefined) checkKeyRef(agent.key, keys, ['agent', 'key'], add);
    const label = asObj(agent.label);
    if (label) {
      checkCidrs(label.destinations, ['agent', 'label', 'destinations'], add);
      checkPorts(label.ports, ['agent', 'label', 'ports'], add);
    }
    checkQueues(agent, ['agent'], add);
    const egress = asObj(agent.egress);
    const names = new Map<string, number>();
    asArr(egress?.rules).forEach((r, i) => {
      const rule = asObj(r);
      if (!rule) return;
      const base: Seg[] = ['agent', 'egress', 'rules', i];
      const name = typeof rule.name === 'string' ? rule.name : `rule-${i + 1}`;
      if (names.has(name)) {
        add([...base, 'name'], `rule name "${name}" is already used by rules[${names.get(name)}]`);
      } else names.set(name, i);
      const app = asObj(rule.app);
      if (app) {
        if (typeof app.exe === 'string' && app.exe !== '') {
          checkGlob(app.exe, [...base, 'app', 'exe'], add);
          if (!app.exe.startsWith('/') && !app.exe.startsWith('*')) {
            add(
              [...base, 'app', 'exe'],
              `"${app.exe}" can never match: executable paths are absolute (write "/usr/bin/${app.exe}" or "**/${app.exe}")`,
            );
          }
        }
        checkGlob(app.cgroup, [...base, 'app', 'cgroup'], add);
        if (typeof app.cmdline === 'string' && app.cmdline !== '') {
          // The engine that matches it (RE2, linear time) decides what is valid: no backreferences, no lookaround.
          const err = cmdlinePatternError(app.cmdline);
          if (err !== undefined) add([...base, 'app', 'cmdline'], `bad regular expression (RE2 syntax: no backreferences or lookaround): ${err}`);
        }
        if (typeof app.user === 'number' && (!Number.isInteger(app.user) || app.user < 0 || app.user > 0xfffffffe)) {
          add([...base, 'app', 'user'], `uid ${app.user} is out of range`);
        }
      }
      const dst = asObj(rule.dst);
      if (dst) {
        checkCidrs(dst.cidr, [...base, 'dst', 'cidr'], add);
        checkPorts(dst.ports, [...base, 'dst', 'ports'], add);
        if (dst.proto === 'icmp' && asArr(dst.ports).length > 0) {
          add([...base, 'dst', 'ports'], 'ports do not apply to proto icmp');
        }
      }
    });
  }

  const verifier = asObj(data.verifier);
  if (verifier) {
    checkQueues(verifier, ['verifier'], add);
    const mark = asObj(verifier.mark);
    if (mark) {
      const vals: Partial<Record<keyof MarkBits, number>> = {};
      for (const k of ['mask', 'valid', 'invalid', 'unlabelled', 'malformed'] as const) {
        if (mark[k] === undefined) {
          vals[k] = DEFAULT_MARK[k];
          continue;
        }
        if (typeof mark[k] !== 'number' && typeof mark[k] !== 'string') continue; // schema reported it
        const n = parseMarkValue(mark[k]);
        if (n === undefined) add(['verifier', 'mark', k], `${describeValue(mark[k])} is not a 32-bit unsigned integer`);
        else vals[k] = n;
      }
      const mask = vals.mask;
      if (mask === 0) add(['verifier', 'mark', 'mask'], 'mask must not be 0');
      const seen = new Map<number, string>();
      for (const k of ['valid', 'invalid', 'unlabelled', 'malformed'] as const) {
        const v = vals[k];
        if (v === undefined) continue;
        const p: Seg[] = ['verifier', 'mark', k];
        if (v === 0) add(p, `mark value must not be 0 (0 is indistinguishable from "not judged")`);
        else if (mask !== undefined && (v & ~mask) >>> 0 !== 0) {
          add(p, `0x${v.toString(16)} has bits outside the mask 0x${mask.toString(16)}`);
        } else if (seen.has(v)) add(p, `0x${v.toString(16)} is the same value as ${seen.get(v)}`);
        if (v !== 0 && !seen.has(v)) seen.set(v, k);
      }
    }
    const hook = verifier.hook ?? 'forward';
    const names = new Map<string, number>();
    asArr(verifier.rules).forEach((r, i) => {
      const rule = asObj(r);
      if (!rule) return;
      const base: Seg[] = ['verifier', 'rules', i];
      const name = typeof rule.name === 'string' ? rule.name : `rule-${i + 1}`;
      if (names.has(name)) add([...base, 'name'], `rule name "${name}" is already used by rules[${names.get(name)}]`);
      else names.set(name, i);
      checkCidrs(rule.sources, [...base, 'sources'], add);
      checkCidrs(rule.destinations, [...base, 'destinations'], add);
      checkPorts(rule.ports, [...base, 'ports'], add);
      asArr(rule.keys).forEach((k, j) => checkKeyRef(k, keys, [...base, 'keys', j], add));
      if (hook === 'input' && asArr(rule.out_interfaces).length > 0) {
        const hookFrom = flagAt(['verifier', 'hook']) !== undefined ? '--hook input' : 'hook: input';
        add([...base, 'out_interfaces'], `out_interfaces does not apply with ${hookFrom} (packets there have no output interface)`);
      }
    });
  }
}
