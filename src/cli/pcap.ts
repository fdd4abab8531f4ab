// `labelwall pcap verify` and `labelwall pcap label`: offline label checks and labelling of capture files.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { loadKeyFile, type LabelKey } from '../label/keys.js';
import { VERDICTS, type Verdict, type VerifyResult } from '../label/profile.js';
import { DEFAULT_PROFILE, getProfile } from '../label/registry.js';
import { labelCapture, verifyCapture } from '../pcap/process.js';
import { CliError, EXIT_FOUND, EXIT_OK } from './errors.js';
import { LineOutput } from './output.js';
import { progressBar } from './progress.js';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function loadKeys(files: string[]): LabelKey[] {
  if (files.length === 0) throw new CliError("required option '--key-file <file>' not specified");
  return files.map((f) => loadKeyFile(f));
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

const VERIFY_HELP = `
Verdicts (one per frame):
  valid      our label (option 253, length 40, ExID 0x4677) and the MAC matches a key
  invalid    our label, but the MAC matches none of the keys (tampered, forged, wrong key)
  unlabelled  TCP without our label (option 253 with another ExID is not ours)
  malformed  cannot be parsed or judged: truncated headers, bad data offset, bad option
             lengths, our ExID with a length other than 40, IP fragments
  skipped    not TCP (UDP, ICMP, ARP, other link-layer payloads)

Output: a table of counts and the first bad (invalid or malformed) frames; with --json one
object per frame {"frame":N,"verdict":"...","reason":"..."} (frames numbered from 1 in file
order; "reason" on every verdict but valid, which names the matching key's fingerprint as "fingerprint"),
then {"summary":{...counts...}}. A progress bar is drawn on stderr when it is a terminal.
Several --key-file options may be given (key rollover): a label valid under any is valid.

Exit status: 0 when no frame is invalid or malformed, 1 when some are, 2 on usage, file or
key errors. Key files must not be readable by group or others (chmod 600).`;

const LABEL_HELP = `
Every TCP packet gets the compat label (HMAC-SHA256 over seq and payload) as its only TCP
option; lengths and IP/TCP checksums are recomputed and the link-layer frame is rebuilt
around it. Every other frame (non-IP, non-TCP, malformed or fragmented TCP) is copied
unchanged, so frame numbers stay the same.

Output format: the input's unless --format says otherwise. A pcap input gives a pcap with the
same link type and timestamp precision. A pcapng input gives a pcapng with one section whose
interfaces keep their link types, names and timestamp resolutions (comments and other
blocks are not copied); --format pcap works for pcapng input whose frames share one link type.`;

export function register(program: Command): void {
  const pcap = program.command('pcap').description('label and verify capture files offline (pcap, pcapng)');

  pcap
    .command('verify')
    .description('give every frame of a capture a label verdict')
    .argument('<file>', 'capture file (pcap or pcapng)')
    .option('-k, --key-file <file>', 'key file (hex); repeat for several keys', collect)
    .option('--json', 'one JSON object per frame, then a summary line')
    .option('--max-bad <n>', 'bad frames listed in the human output', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new CliError(`--max-bad: not a non-negative integer: ${v}`);
      return n;
    }, 20)
    .addHelpText('after', VERIFY_HELP)
    .action(async (file: string, opts: { keyFile?: string[]; json?: boolean; maxBad: number }) => {
      const keys = loadKeys(opts.keyFile ?? []);
      checkInput(file);
      const out = new LineOutput();
      const bad: Array<{ frame: number; verdict: Verdict; reason?: string }> = [];
      const progress = progressBar('verify', fs.statSync(file).size);
      const onFrame = opts.json
        ? (frame: number, r: VerifyResult): Promise<void> | undefined => {
            const o: Record<string, unknown> = { frame, verdict: r.verdict };
            if (r.reason !== undefined) o.reason = r.reason;
            if (r.keyIndex !== undefined) o.fingerprint = keys[r.keyIndex]!.fingerprint;
            return out.line(JSON.stringify(o));
          }
        : (frame: number, r: VerifyResult): undefined => {
            if ((r.verdict === 'invalid' || r.verdict === 'malformed') && bad.length < opts.maxBad) bad.push({ frame, verdict: r.verdict, reason: r.reason });
            return undefined;
          };
      let counts;
      try {
        counts = await verifyCapture(getProfile(DEFAULT_PROFILE), file, keys, onFrame, (p, s) => progress.update(p, s));
      } finally {
        progress.stop();
      }
      if (opts.json) {
        out.line(JSON.stringify({ summary: counts }));
      } else {
        out.line(`${file}: ${counts.total} frames; keys: ${keys.map((k) => k.fingerprint).join(', ')}`);
        out.line('');
        out.line('verdict     frames');
        for (const v of VERDICTS) out.line(`${v.padEnd(10)} ${String(counts[v]).padStart(7)}`);
        out.line(`${'total'.padEnd(10)} ${String(counts.total).padStart(7)}`);
        if (bad.length > 0) {
          const more = counts.invalid + counts.malformed - bad.length;
          out.line('');
          out.line(`first bad frames${more > 0 ? ` (${more} more not shown)` : ''}:`);
          out.line('  frame  verdict    reason');
          for (const b of bad) out.line(`${String(b.frame).padStart(7)}  ${b.verdict.padEnd(9)}  ${b.reason ?? ''}`);
        }
      }
      await out.flush();
      process.exitCode = counts.invalid + counts.malformed > 0 ? EXIT_FOUND : EXIT_OK;
    });

  pcap
    .command('label')
    .description(`label every TCP packet of a capture (${DEFAULT_PROFILE} profile), copying everything else`)
    .argument('<in>', 'input capture (pcap or pcapng)')
    .argument('<out>', 'output capture (overwritten)')
    .option('-k, --key-file <file>', 'key file (hex)')
    .option('--format <format>', 'output format: pcap or pcapng (default: same as the input)')
    .addHelpText('after', LABEL_HELP)
    .action(async (inFile: string, outFile: string, opts: { keyFile?: string; format?: string }) => {
      if (!opts.keyFile) throw new CliError("required option '--key-file <file>' not specified");
      if (opts.format !== undefined && opts.format !== 'pcap' && opts.format !== 'pcapng') {
        throw new CliError(`--format: expected pcap or pcapng, got '${opts.format}'`);
      }
      const key = loadKeyFile(opts.keyFile);
      checkInput(inFile);
      if (fs.existsSync(outFile) && fs.realpathSync(outFile) === fs.realpathSync(inFile)) {
        throw new CliError(`${outFile}: output is the input file`);
      }
      if (!fs.existsSync(path.dirname(path.resolve(outFile)))) throw new CliError(`${outFile}: directory does not exist`);
      const progress = progressBar('label', fs.statSync(inFile).size);
      let r;
      try {
        r = await labelCapture(getProfile(DEFAULT_PROFILE), inFile, outFile, key, { format: opts.format as 'pcap' | 'pcapng' | undefined, onProgress: (p, s) => progress.update(p, s) });
      } finally {
        progress.stop();
      }
      process.stdout.write(
        `${outFile}: ${r.format}, ${r.total} frames: ${r.labelled} labelled (key ${key.fingerprint}), ` +
          `${r.skipped} not TCP and ${r.malformed} malformed copied unchanged\n`,
      );
      process.exitCode = EXIT_OK;
    });
}
