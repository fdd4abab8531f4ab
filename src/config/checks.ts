// Semantic checks: what the schema cannot say (CIDR and port syntax, globs and regular
// expressions, references to keys, mark bits, queue ranges, rule names, hook and interfaces).
// They run on whatever parts are well-typed, so every problem shows up in one pass.
import picomatch from 'picomatch';
import { cmdlinePatternError, parseCidr, parsePortRange } from '../util/match.js';
import { DEFAULT_AGENT_MARK, DEFAULT_AGENT_TAG_MASK, isTagMask, type AgentMarks } from './marks.js';
import { DEFAULT_MARK, type MarkBits } from './model.js';
import { describeValue, nearest, type Add, type Seg } from './messages.js';
import { parseListen } from './listen.js';
import { natPartsProblem } from './nat.js';
import { looksLikeKeyMaterial } from '../label/keys.js';

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
  if (Object.hasOwn(keys, name)) return;
  // A key pasted where its name belongs: never echoed (keys do not appear in output).
  if (looksLikeKeyMaterial(name)) {
    add(
      path,
      'the value given looks like a key, not a key name: put the key in a file, name it under keys (NAME: FILE) and give NAME here',
    );
    return;
  }
  const defined = Object.keys(keys);
  const near = nearest(name, defined);
  const tail =
    near !== undefined
      ? ` (did you mean "${near}"?)`
      : defined.length > 0
        ? ` (defined: ${defined.join(', ')})`
        : ' (the keys section defines none)';
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

/** agent.egress.queue: not one of the labelling queues (its own range is the schema's to check). */
function checkEgressQueue(agent: Obj, egress: Obj | undefined, add: Add): void {
  const e = egress?.queue;
  if (typeof e !== 'number' || !Number.isInteger(e)) return;
  const b = typeof agent.queue_base === 'number' ? agent.queue_base : 100;
  const n = typeof agent.queues === 'number' ? agent.queues : 1;
  if (e >= b && e < b + n)
    add(['agent', 'egress', 'queue'], `queue ${e} is one of the labelling queues ${b}..${b + n - 1}: pick another number`);
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
    if (clash)
      add(
        ['agent', 'mark', k],
        `${hex(v)} shares bits ${hex((clash[1] & v) >>> 0)} with agent.mark.${clash[0]} (each mark needs bits of its own)`,
      );
    seen.push([k, v]);
  }
  // The tag bits: 0 (no tags) or 16 contiguous bits, clear of the three marks.
  const rawTag = given?.tag_mask;
  let tagMask: number | undefined = DEFAULT_AGENT_TAG_MASK;
  if (rawTag !== undefined) {
    tagMask = typeof rawTag === 'number' || typeof rawTag === 'string' ? parseMarkValue(rawTag) : undefined;
    if (tagMask === undefined) {
      if (typeof rawTag === 'number' || typeof rawTag === 'string')
        add(['agent', 'mark', 'tag_mask'], `${describeValue(rawTag)} is not a 32-bit unsigned integer`);
    } else if (tagMask !== 0 && !isTagMask(tagMask)) {
      add(['agent', 'mark', 'tag_mask'], `${hex(tagMask)} is not 16 contiguous bits (a tag is 16 bits; 0 = no tags), e.g. 0xffff0000`);
      tagMask = undefined;
    } else {
      const clash = seen.find(([, o]) => (o & tagMask!) !== 0);
      if (clash)
        add(
          ['agent', 'mark', 'tag_mask'],
          `${hex(tagMask)} shares bits ${hex((clash[1] & tagMask) >>> 0)} with agent.mark.${clash[0]} (each mark needs bits of its own)`,
        );
    }
  }
  const vm = vmark?.mask === undefined ? DEFAULT_MARK.mask : parseMarkValue(vmark.mask);
  if (vm === undefined || vm === 0) return; // reported with verifier.mark
  // The default tag bits are used only when an egress rule gives a tag (daemon/resolve.ts).
  const tagged = asArr(asObj(agent?.egress)?.rules).some((r) => asObj(r)?.tag !== undefined);
  if (tagMask !== undefined && (tagMask & vm) !== 0 && (rawTag !== undefined || tagged)) {
    if (rawTag !== undefined)
      add(
        ['agent', 'mark', 'tag_mask'],
        `${hex(tagMask)} overlaps the verifier's mark mask ${hex(vm)}: a verifier on the same host would take the agent's packets as already judged`,
      );
    else
      add(
        ['verifier', 'mark', 'mask'],
        `${hex(vm)} overlaps the agent's default tag bits ${hex(tagMask)}: set agent.mark.tag_mask to bits outside the mask (or 0)`,
      );
  }
  const defaults: string[] = [];
  for (const [k, v] of seen) {
    if ((v & vm) === 0) continue;
    if (given?.[k] !== undefined) {
      add(
        ['agent', 'mark', k],
        `${hex(v)} overlaps the verifier's mark mask ${hex(vm)}: a verifier on the same host would take the agent's packets as already judged`,
      );
    } else defaults.push(`${k} ${hex(v)}`);
  }
  if (defaults.length > 0) {
    add(
      ['verifier', 'mark', 'mask'],
      `${hex(vm)} overlaps the agent's default marks (${defaults.join(', ')}): set agent.mark to bits outside the mask`,
    );
  }
}

/** `tags:` numbers are unique: a number names one application. */
function checkTags(tags: Obj, add: Add): void {
  const byNumber = new Map<number, string>();
  for (const [name, n] of Object.entries(tags)) {
    if (typeof n !== 'number' || !Number.isInteger(n)) continue; // the schema reports it
    const other = byNumber.get(n);
    if (other !== undefined) add(['tags', name], `tag number ${n} is already used by tag "${other}" (a number names one application)`);
    else byNumber.set(n, name);
  }
}

/** A `tag:` value: a name defined under `tags`, or a number 1-65535. */
function checkTagRef(ref: unknown, tags: Obj, path: Seg[], add: Add): void {
  if (typeof ref === 'number') {
    if (Number.isInteger(ref) && (ref < 1 || ref > 65535))
      add(path, `tag number ${ref} is out of range: tags are 1-65535 (0 means unclassified)`);
    return;
  }
  if (typeof ref !== 'string') return;
  if (Object.hasOwn(tags, ref)) return;
  const defined = Object.keys(tags);
  const near = nearest(ref, defined);
  const tail = /^[0-9]+$/.test(ref)
    ? ` (a quoted number is a name; write ${ref} without quotes for tag number ${ref})`
    : near !== undefined
      ? ` (did you mean "${near}"?)`
      : defined.length > 0
        ? ` (defined: ${defined.join(', ')})`
        : ' (the tags section defines none)';
  add(path, `tag "${ref}" is not defined under tags${tail}`);
}

/** `translated` / `allow_nat`: ports are translated only together with an address (v1's P needs S or D). */
function checkNatParts(list: unknown, path: Seg[], add: Add): void {
  const problem = natPartsProblem(asArr(list));
  if (problem) add(path, problem);
}

/** The key id of a `keys:` entry (a path is id 0); undefined when the entry is malformed. */
function keyIdOf(entry: unknown): number | undefined {
  if (typeof entry === 'string') return 0;
  const e = asObj(entry);
  if (!e) return undefined;
  if (e.id === undefined) return 0;
  return typeof e.id === 'number' && Number.isInteger(e.id) && e.id >= 0 && e.id <= 7 ? e.id : undefined;
}

/**
 * The keys a v1 verifier rule accepts need different key ids: a v1 label names its key by id and
 * the verifier tries only that one. `names` are the rule's keys; each clash is reported at `at(j)`.
 */
function checkKeyIds(names: readonly string[], keys: Obj, at: (j: number) => Seg[], add: Add, whose: string): void {
  const byId = new Map<number, string>();
  names.forEach((name, j) => {
    if (!Object.hasOwn(keys, name)) return; // reported as undefined
    const id = keyIdOf(keys[name]);
    if (id === undefined) return;
    const other = byId.get(id);
    if (other !== undefined)
      add(
        at(j),
        `key "${name}" has key id ${id}, like key "${other}" (${whose}; a v1 label names its key by id: give each key its own id, { file: PATH, id: 0-7 })`,
      );
    else byId.set(id, name);
  });
}

/** The longest path a UNIX socket can have (sun_path holds 108 bytes with the NUL). */
const MAX_SOCKET_PATH = 107;

export function semanticChecks(data: Obj, add: Add, flagAt: (path: readonly Seg[]) => string | undefined): void {
  const control = asObj(data.control);
  if (typeof control?.socket === 'string' && Buffer.byteLength(control.socket) > MAX_SOCKET_PATH) {
    add(['control', 'socket'], `is ${Buffer.byteLength(control.socket)} bytes long; a UNIX socket path has at most ${MAX_SOCKET_PATH}`);
  }
  const metrics = asObj(data.metrics);
  if (typeof metrics?.listen === 'string' || typeof metrics?.listen === 'number') {
    const r = parseListen(metrics.listen);
    if (!r.ok) add(['metrics', 'listen'], r.reason);
  }
  checkAgentMarks(asObj(data.agent), asObj(data.verifier), add);
  const keys = asObj(data.keys) ?? {};
  const tags = asObj(data.tags) ?? {};
  checkTags(tags, add);
  // A setting as the user wrote it: the flag when one gave it, else the file's key.
  const said = (path: Seg[], flag: string, key: string, value: string): string =>
    flagAt(path) !== undefined ? `${flag} ${value}` : `${key}: ${value}`;
  const agent = asObj(data.agent);
  if (agent) {
    if (agent.key !== undefined) checkKeyRef(agent.key, keys, ['agent', 'key'], add);
    // compat labels have no S/D/P bits: the setting would be silently ignored.
    if (agent.profile === 'compat' && asArr(agent.nat).length > 0) {
      add(
        ['agent', 'nat'],
        `nat needs profile v1 (${said(['agent', 'profile'], '--profile', 'profile', 'compat')} labels carry no NAT modes)`,
      );
    }
    asArr(agent.nat).forEach((n, i) => {
      const nat = asObj(n);
      if (!nat) return;
      checkCidrs(nat.destinations, ['agent', 'nat', i, 'destinations'], add);
      checkNatParts(nat.translated, ['agent', 'nat', i, 'translated'], add);
    });
    const label = asObj(agent.label);
    if (label) {
      checkCidrs(label.destinations, ['agent', 'label', 'destinations'], add);
      checkPorts(label.ports, ['agent', 'label', 'ports'], add);
    }
    checkQueues(agent, ['agent'], add);
    const egress = asObj(agent.egress);
    checkEgressQueue(agent, egress, add);
    const names = new Map<string, number>();
    asArr(egress?.rules).forEach((r, i) => {
      const rule = asObj(r);
      if (!rule) return;
      const base: Seg[] = ['agent', 'egress', 'rules', i];
      const name = typeof rule.name === 'string' ? rule.name : `rule-${i + 1}`;
      if (names.has(name)) {
        add([...base, 'name'], `rule name "${name}" is already used by rules[${names.get(name)}]`);
      } else names.set(name, i);
      if (rule.tag !== undefined) checkTagRef(rule.tag, tags, [...base, 'tag'], add);
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
          if (err !== undefined)
            add([...base, 'app', 'cmdline'], `bad regular expression (RE2 syntax: no backreferences or lookaround): ${err}`);
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
    if (mark?.tag_mask !== undefined && (typeof mark.tag_mask === 'number' || typeof mark.tag_mask === 'string')) {
      const t = parseMarkValue(mark.tag_mask);
      const mask = mark.mask === undefined ? DEFAULT_MARK.mask : parseMarkValue(mark.mask);
      const p: Seg[] = ['verifier', 'mark', 'tag_mask'];
      if (t === undefined) add(p, `${describeValue(mark.tag_mask)} is not a 32-bit unsigned integer`);
      else if (t !== 0 && !isTagMask(t))
        add(p, `0x${t.toString(16)} is not 16 contiguous bits (a tag is 16 bits; 0 = tags not marked), e.g. 0xffff0000`);
      else if (mask !== undefined && (t & mask) !== 0)
        add(p, `0x${t.toString(16)} overlaps the mask 0x${mask.toString(16)} (the verdict bits)`);
    } else if (mark?.mask !== undefined && (verifier.action === 'mark' || asArr(verifier.rules).some((r) => asObj(r)?.action === 'mark'))) {
      // The tag goes into the mark in `mark` mode only: there the default tag bits must be clear of the verdict bits.
      const mask = parseMarkValue(mark.mask);
      if (mask !== undefined && (mask & DEFAULT_MARK.tagMask) !== 0) {
        add(
          ['verifier', 'mark', 'mask'],
          `0x${mask.toString(16)} overlaps the default tag_mask 0x${DEFAULT_MARK.tagMask.toString(16)}: set verifier.mark.tag_mask to other bits (or 0)`,
        );
      }
    }
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
    const compatFrom = verifier.profile === 'compat' ? said(['verifier', 'profile'], '--profile', 'profile', 'compat') : undefined;
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
      asArr(rule.keys).forEach((k, j) => {
        checkKeyRef(k, keys, [...base, 'keys', j], add);
      });
      for (const [j, t] of asArr(rule.tags).entries()) checkTagRef(t, tags, [...base, 'tags', j], add);
      checkNatParts(rule.allow_nat, [...base, 'allow_nat'], add);
      if (compatFrom) {
        // A compat label carries no app tag and no NAT modes: tags would refuse every valid label.
        if (rule.tags !== undefined)
          add(
            [...base, 'tags'],
            `tags need profile v1 or any (with ${compatFrom} no label has a tag, so every valid one would be tag-denied)`,
          );
        if (rule.allow_nat !== undefined)
          add([...base, 'allow_nat'], `allow_nat needs profile v1 or any (${compatFrom} labels carry no NAT modes)`);
      } else {
        if (rule.keys !== undefined) {
          const ks = asArr(rule.keys).filter((k): k is string => typeof k === 'string');
          checkKeyIds(ks, keys, (j) => [...base, 'keys', j], add, `both accepted by verifier rule "${name}"`);
        } else
          checkKeyIds(Object.keys(keys), keys, (j) => ['keys', Object.keys(keys)[j]!], add, `verifier rule "${name}" accepts every key`);
      }
      if (hook === 'input' && asArr(rule.out_interfaces).length > 0) {
        const hookFrom = said(['verifier', 'hook'], '--hook', 'hook', 'input');
        add([...base, 'out_interfaces'], `out_interfaces does not apply with ${hookFrom} (packets there have no output interface)`);
      }
    });
    // No rules: one implicit rule with every key.
    if (asArr(verifier.rules).length === 0 && verifier.profile !== 'compat') {
      checkKeyIds(Object.keys(keys), keys, (j) => ['keys', Object.keys(keys)[j]!], add, 'the verifier accepts every key');
    }
  }
}
