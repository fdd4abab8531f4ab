// `labelwall pcap verify` and `labelwall pcap label`: offline label checks and labelling of capture files.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { type LabelKey, loadKeyFile } from '../label/keys.js';
import { parseKeyFlag, UsageError } from '../daemon/resolve.js';
import type { KeyEntry } from '../config/model.js';
import { VERDICTS, type Verdict, type VerifyResult } from '../label/profile.js';
import { getProfile } from '../label/registry.js';
import { labelCapture, type VerdictCounts, verifyCapture } from '../pcap/process.js';
import { CliError, EXIT_FOUND, EXIT_OK } from './errors.js';
import { LineOutput } from './output.js';
import { progressBar } from './progress.js';
import { agentProfiles } from '../config/schema.js';
import { NAT_PART_BITS, natPartsProblem } from '../config/nat.js';
import { intFlag } from './int-flag.js';
import { DEFAULT_EPOCH_AFTER, DEFAULT_EPOCH_BEFORE } from '../label/v1.js';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The profiles each command takes, and its default (an analysis tool verifies whatever it finds). */
const LABEL_PROFILES = agentProfiles;
const VERIFY_PROFILES = ['any', ...agentProfiles] as const;
const DEFAULT_LABEL_PROFILE = 'v1';
const DEFAULT_VERIFY_PROFILE = 'any';

function profileOption(allowed: readonly string[]): (v: string) => string {
  return (v) => {
    if (!allowed.includes(v)) throw new CliError(`--profile: expected ${allowed.join(', ')}, got '${v}'`);
    return v;
  };
}

/** The keys of --key-file arguments, FILE or ID=FILE, read as the daemons read theirs (parseKeyFlag). */
function loadKeys(specs: string[]): LabelKey[] {
  if (specs.length === 0) throw new CliError("required option '--key-file <[id=]file>' not specified");
  return specs.map((s) => {
    let entry: KeyEntry;
    try {
      entry = parseKeyFlag(s);
    } catch (e) {
      throw e instanceof UsageError ? new CliError(e.message) : e;
    }
    return loadKeyFile(entry.file, entry.id);
  });
}

/** The spellings of 0.1 (src, dst), still read for this release; only the config's names are documented. */
const OLD_NAT_NAMES: Record<string, string> = { src: 'source', dst: 'destination' };

/**
 * --nat / --allow-nat: a comma-separated list of the config's `translated` / `allow_nat` parts,
 * source, destination, ports (S, D, P), or none; ports alone is refused as in the config.
 */
export function parseNatList(flag: string, v: string): number {
  if (v === 'none') return 0;
  const parts = v.split(',').map((p) => OLD_NAT_NAMES[p.trim()] ?? p.trim());
  let n = 0;
  for (const part of parts) {
    const bit = Object.hasOwn(NAT_PART_BITS, part) ? NAT_PART_BITS[part as keyof typeof NAT_PART_BITS] : undefined;
    if (bit === undefined) throw new CliError(`${flag}: expected a list of source, destination, ports (or none), got '${v}'`);
    n |= bit;
  }
  const problem = natPartsProblem(parts);
  if (problem) throw new CliError(`${flag}: ${problem}`);
  return n;
}

/** NAT flags as the names --nat takes, for output. */
function natNames(n: number): string {
  return (
    Object.entries(NAT_PART_BITS)
      .filter(([, bit]) => n & bit)
      .map(([name]) => name)
      .join(',') || 'none'
  );
}

function parseTag(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 0xffff) throw new CliError(`--tag: expected an app tag 0-65535, got '${v}'`);
  return n;
}

function checkInput(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(`${file}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code})`}`);
  }
  if (!st.isFile()) throw new CliError(`${file}: not a regular file`);
}

const KEY_HELP = `Keys: --key-file FILE is key id 0; --key-file ID=FILE (ID 0-7) gives the key id a v1
label names, e.g. --key-file 5=/etc/labelwall/site.key (compat labels carry no key id).`;

const VERIFY_HELP = `
Profiles (--profile): any (the default) judges each frame by the label it carries: option
253 with ExID 0x4677 and length 16 or 20 is v1, length 40 is compat; v1 or compat judge only
their own (v1 calls a compat label invalid, reason other-profile; compat calls a v1 label
malformed). docs/label-v1.md has the v1 format.

Verdicts (one per frame) and the reasons each gives:
  valid      our label and its MAC matches a key
  invalid    our label, but not proof of origin: mac-mismatch (tampered, forged, wrong key),
             v1: unknown-key (no key with its key id), stale-epoch (labelled more than 32-48 s
             before or 16-32 s after the frame's capture time; --epoch-before, --epoch-after), nat-mode-denied (S/D/P set
             and not allowed by --allow-nat), other-profile (a compat label, --profile v1)
  unlabelled  TCP without our label, reason no-label (option 253 with another ExID is not
             ours)
  malformed  cannot be parsed or judged: truncated-link (frame shorter than its link-layer
             header), too-many-vlan-tags (more than 8), truncated-ip, bad-ip-version (also:
             not the version the link layer says), bad-ihl, bad-total-length, fragment (IP
             fragments), truncated-ext-header, truncated-tcp, bad-data-offset,
             bad-option-length, bad-label-length (our ExID with a length no profile has),
             bad-label-version (v1 version bits not 01), compact-on-syn (a compact v1 label
             on a SYN), duplicate-label (two labels)
  skipped    not-tcp (UDP, ICMP), not-ip (ARP, other link-layer payloads), unsupported link
             type

Each frame is judged at its capture timestamp (v1's epoch window).

Output: a table of counts and the first bad (invalid or malformed) frames; with --json one
object per frame {"frame":N,"verdict":"...","reason":"...","profile":"v1","keyId":5,"tag":300,
"nat":0,"compact":false} (frames numbered from 1 in file order; "reason" on every verdict but
valid, which names the matching key's fingerprint as "fingerprint"; "profile" once a label was
found; keyId, tag, nat (NAT_* bits: source 1, destination 2, ports 4) and compact for v1 labels), then
{"summary":{...counts...}}. A progress bar is drawn on stderr when it is a terminal.
Several --key-file options may be given (key rollover): a label valid under any is valid.
${KEY_HELP}

Exit status: 0 when no frame is invalid or malformed, 1 when some are, 2 on usage, file or
key errors. Key files must not be readable by group or others (chmod 600).`;

const LABEL_HELP = `
Profiles (--profile): v1 (the default) inserts a 20-byte label (16 where the stack's options
leave no room; SACK blocks beyond the first, then Fast Open, MPTCP and unknown options are
removed when even that does not fit) and keeps every other option; its MAC covers addresses,
ports, seq, ack, flags, window, options but MSS, and payload, under the key id of the key,
the --tag and the --nat flags, at each frame's capture time (docs/label-v1.md). compat gives
the paper's 40-byte label (HMAC-SHA256 over seq and payload) as the only TCP option.
Lengths and IP/TCP checksums are recomputed and the link-layer frame is rebuilt around it.
Every other frame (non-IP, non-TCP, malformed or fragmented TCP, v1 segments with no room for
a label) is copied unchanged, so frame numbers stay the same.

--tag N (0-65535) and --nat source,destination,ports (which of the source address,
destination address and their ports a NAT on the way may change: S, D, P; ports only with an
address; the names of the config's agent.nat translated) are v1's.

One --key-file: a label is made with one key (a second --key-file is refused).
${KEY_HELP}

Output format: the input's unless --format says otherwise. A pcap input gives a pcap with the
same link type and timestamp precision. A pcapng input gives a pcapng with one section whose
interfaces keep their link types, names and timestamp resolutions (comments and other
blocks are not copied); --format pcap works for pcapng input whose frames share one link type.`;

export function register(program: Command): void {
  const pcap = program.command('pcap').description('label and verify capture files offline (pcap, pcapng)');

  interface VerifyOptions {
    keyFile?: string[];
    profile: string;
    allowNat?: number;
    epochBefore: number;
    epochAfter: number;
    json?: boolean;
    maxBad: number;
  }
  pcap
    .command('verify')
    .description('give every frame of a capture a label verdict')
    .argument('<file>', 'capture file (pcap or pcapng)')
    .option(
      '-k, --key-file <[id=]file>',
      'key file (hex), optionally with its v1 key id (id=file); required, repeat for several keys',
      collect,
    )
    .option('--profile <name>', `label profile: ${VERIFY_PROFILES.join(', ')}`, profileOption(VERIFY_PROFILES), DEFAULT_VERIFY_PROFILE)
    .option('--allow-nat <list>', 'v1: NAT flags a label may carry (source,destination,ports or none, as allow_nat; default none)', (v) =>
      parseNatList('--allow-nat', v),
    )
    .option(
      '--epoch-before <n>',
      "v1: 16 s epochs a label may be older than its frame's capture time, 0-16 (verifier.epoch_window.before)",
      intFlag('--epoch-before', 0, 16),
      DEFAULT_EPOCH_BEFORE,
    )
    .option(
      '--epoch-after <n>',
      "v1: 16 s epochs a label may be ahead of its frame's capture time, 0-16 (verifier.epoch_window.after)",
      intFlag('--epoch-after', 0, 16),
      DEFAULT_EPOCH_AFTER,
    )
    .option('--json', 'one JSON object per frame, then a summary line')
    .option(
      '--max-bad <n>',
      'how many bad (invalid or malformed) frames the text output lists (0: none; not used with --json)',
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) throw new CliError(`--max-bad: not a non-negative integer: ${v}`);
        return n;
      },
      20,
    )
    .addHelpText('after', VERIFY_HELP)
    .action(async (file: string, opts: VerifyOptions) => {
      // As pcap label's --nat and the config's allow_nat: compat labels carry no NAT flags.
      if (opts.profile === 'compat' && opts.allowNat !== undefined) {
        throw new CliError("--allow-nat is v1's; the compat label has no NAT flags (use --profile v1 or any)");
      }
      const keys = loadKeys(opts.keyFile ?? []);
      const profile = getProfile(opts.profile);
      const byProfile = new Map<string, number>();
      checkInput(file);
      const out = new LineOutput();
      const bad: Array<{ frame: number; verdict: Verdict; reason?: string }> = [];
      const progress = progressBar('verify', fs.statSync(file).size);
      const onFrame = opts.json
        ? (frame: number, r: VerifyResult): Promise<void> | undefined => {
            const o: Record<string, unknown> = { frame, verdict: r.verdict };
            if (r.reason !== undefined) o.reason = r.reason;
            const p = labelProfile(r);
            if (p !== undefined) o.profile = p;
            if (r.keyIndex !== undefined) o.fingerprint = keys[r.keyIndex]!.fingerprint;
            if (r.keyId !== undefined) o.keyId = r.keyId;
            if (r.tag !== undefined) o.tag = r.tag;
            if (r.nat !== undefined) o.nat = r.nat;
            if (r.compact !== undefined) o.compact = r.compact;
            return out.line(JSON.stringify(o));
          }
        : (frame: number, r: VerifyResult): undefined => {
            const p = labelProfile(r);
            if (p !== undefined) byProfile.set(p, (byProfile.get(p) ?? 0) + 1);
            if ((r.verdict === 'invalid' || r.verdict === 'malformed') && bad.length < opts.maxBad)
              bad.push({ frame, verdict: r.verdict, reason: r.reason });
            return undefined;
          };
      // The profile whose label a frame carried: 'any' and v1 say so; compat's verdicts on a label are its own.
      function labelProfile(r: VerifyResult): string | undefined {
        return r.profile ?? (profile.name === 'compat' && (r.verdict === 'valid' || r.verdict === 'invalid') ? 'compat' : undefined);
      }
      let counts: VerdictCounts;
      try {
        counts = await verifyCapture(profile, file, keys, onFrame, (p, s) => progress.update(p, s), {
          allowNat: opts.allowNat ?? 0,
          epochBefore: opts.epochBefore,
          epochAfter: opts.epochAfter,
        });
      } catch (e) {
        // The frames judged before the damage are printed before the error (--json: every line).
        await out.flush();
        throw e;
      } finally {
        progress.stop();
      }
      if (opts.json) {
        out.line(JSON.stringify({ summary: counts }));
      } else {
        out.line(
          `${file}: ${counts.total} frames; profile ${profile.name}; keys: ${keys.map((k) => `${k.fingerprint} (id ${k.keyId})`).join(', ')}`,
        );
        out.line('');
        out.line('verdict     frames');
        for (const v of VERDICTS) out.line(`${v.padEnd(10)} ${String(counts[v]).padStart(7)}`);
        out.line(`${'total'.padEnd(10)} ${String(counts.total).padStart(7)}`);
        if (byProfile.size > 0) out.line(`labels by profile: ${[...byProfile].map(([p, n]) => `${p} ${n}`).join(', ')}`);
        if (bad.length > 0) {
          const more = counts.invalid + counts.malformed - bad.length;
          out.line('');
          out.line(`first bad frames${more > 0 ? ` (${more} more not shown)` : ''}:`);
          out.line('  frame  verdict    reason');
          for (const b of bad) out.line(`${String(b.frame).padStart(7)}  ${b.verdict.padEnd(9)}  ${b.reason ?? ''}`);
        }
      }
      await out.flush();
      if (counts.truncated !== undefined) {
        process.stderr.write(`labelwall: warning: ${counts.truncated}; the ${counts.total} complete frames before it are counted\n`);
      }
      process.exitCode = counts.invalid + counts.malformed > 0 ? EXIT_FOUND : EXIT_OK;
    });

  pcap
    .command('label')
    .description('label every TCP packet of a capture (v1 or compat profile), copying everything else')
    .argument('<in>', 'input capture (pcap or pcapng)')
    .argument('<out>', 'output capture (overwritten)')
    .option('-k, --key-file <[id=]file>', 'key file (hex), optionally with its v1 key id (id=file); required, one key', collect)
    .option('--profile <name>', `label profile: ${LABEL_PROFILES.join(', ')}`, profileOption(LABEL_PROFILES), DEFAULT_LABEL_PROFILE)
    .option('--tag <n>', 'v1: the app tag every label carries (0-65535, default 0)', parseTag)
    .option('--nat <list>', 'v1: NAT flags every label carries (source,destination,ports or none, as translated; default none)', (v) =>
      parseNatList('--nat', v),
    )
    .option('--format <format>', 'output format: pcap or pcapng (default: same as the input)')
    .addHelpText('after', LABEL_HELP)
    .action(
      async (
        inFile: string,
        outFile: string,
        opts: { keyFile?: string[]; profile: string; tag?: number; nat?: number; format?: string },
      ) => {
        if (!opts.keyFile?.length) throw new CliError("required option '--key-file <[id=]file>' not specified");
        // As the agent: a label names one key; a second -k is refused, not silently replacing the first.
        if (opts.keyFile.length > 1) throw new CliError('pcap label labels with one key: give --key-file once');
        if (opts.format !== undefined && opts.format !== 'pcap' && opts.format !== 'pcapng') {
          throw new CliError(`--format: expected pcap or pcapng, got '${opts.format}'`);
        }
        if (opts.profile !== 'v1' && (opts.tag !== undefined || opts.nat !== undefined)) {
          throw new CliError(`--tag and --nat are v1's; the ${opts.profile} label has no room for them (use --profile v1)`);
        }
        const profile = getProfile(opts.profile);
        const [key] = loadKeys(opts.keyFile);
        checkInput(inFile);
        if (fs.existsSync(outFile) && fs.realpathSync(outFile) === fs.realpathSync(inFile)) {
          throw new CliError(`${outFile}: output is the input file`);
        }
        if (!fs.existsSync(path.dirname(path.resolve(outFile)))) throw new CliError(`${outFile}: directory does not exist`);
        const progress = progressBar('label', fs.statSync(inFile).size);
        let r: Awaited<ReturnType<typeof labelCapture>>;
        try {
          r = await labelCapture(profile, inFile, outFile, key!, {
            format: opts.format as 'pcap' | 'pcapng' | undefined,
            onProgress: (p, s) => progress.update(p, s),
            tag: opts.tag,
            nat: opts.nat,
          });
        } finally {
          progress.stop();
        }
        const how =
          profile.name === 'v1'
            ? `v1, key ${key!.fingerprint} id ${key!.keyId}, tag ${opts.tag ?? 0}, nat ${natNames(opts.nat ?? 0)}; ` +
              `${r.compact} compact, ${r.sackTrimmed} SACK-trimmed, ${r.optionsRemoved} with options removed`
            : `compat, key ${key!.fingerprint}`;
        process.stdout.write(
          `${outFile}: ${r.format}, ${r.total} frames: ${r.labelled} labelled (${how}), ` +
            `${r.skipped} skipped (not TCP${profile.name === 'v1' ? ', or no room for the label' : ''}) and ${r.malformed} malformed copied unchanged\n`,
        );
        if (r.truncated !== undefined) {
          process.stderr.write(`labelwall: warning: ${r.truncated}; the ${r.total} complete frames before it are written\n`);
        }
        process.exitCode = EXIT_OK;
      },
    );
}
