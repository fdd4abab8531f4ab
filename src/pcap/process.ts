// Whole-file label and verify: stream records in, call the per-frame functions, stream out.
// The CLI and the benchmark both run through here.
import { lstat, unlink } from 'node:fs/promises';
import type { LabelKey } from '../label/keys.js';
import type { LabelProfile, PacketContext, Verdict, VerifyResult } from '../label/profile.js';
import { CaptureError, OutputError } from './errors.js';
import { labelFrame, verifyFrame } from './frames.js';
import { CaptureReader, type CaptureFormat, type CaptureRecord } from './reader.js';
import { PcapngWriter, PcapWriter } from './writer.js';

export type VerdictCounts = Record<Verdict, number> & {
  total: number;
  /** The file ends inside a record (a capture cut by a kill): the counts are those of the complete frames before it. */
  truncated?: string;
};

export function emptyCounts(): VerdictCounts {
  return { total: 0, valid: 0, invalid: 0, unlabelled: 0, malformed: 0, skipped: 0 };
}

export type Progress = (position: number, size: number) => void;

/** A record's capture time in ms since the epoch (what a profile judges the label's time by). */
function recordTimeMs(rec: CaptureRecord): number {
  return rec.tsSec * 1000 + (rec.tsFrac * 1000) / rec.tsUnitsPerSec;
}

/**
 * Verifies every frame with `profile`; calls onFrame for each (in file order) and returns the
 * counts. Each frame is judged at its capture time (ctx.timeMs); `ctx` gives the rest (v1's
 * allowNat, epoch window).
 */
export async function verifyCapture(
  profile: LabelProfile,
  file: string,
  keys: readonly LabelKey[],
  /** May return a promise (e.g. output backpressure), which is awaited before the next frame. */
  onFrame?: (frame: number, result: VerifyResult, rec: CaptureRecord) => Promise<void> | undefined | void,
  onProgress?: Progress,
  baseCtx: PacketContext = {},
): Promise<VerdictCounts> {
  const reader = await CaptureReader.open(file);
  const counts = emptyCounts();
  const ctx: PacketContext = { ...baseCtx };
  try {
    for await (const batch of reader.batches()) {
      for (const rec of batch) {
        ctx.timeMs = recordTimeMs(rec);
        const r = verifyFrame(profile, rec.linktype, rec.data, keys, ctx);
        counts.total++;
        counts[r.verdict]++;
        if (onFrame) {
          const p = onFrame(rec.frame, r, rec);
          if (p) await p;
        }
      }
      if (onProgress) onProgress(reader.position, reader.size);
    }
    if (onProgress) onProgress(reader.position, reader.size);
    if (reader.truncated) counts.truncated = reader.truncated.message;
  } finally {
    await reader.close();
  }
  return counts;
}

export interface LabelCounts {
  total: number;
  labelled: number;
  skipped: number;
  malformed: number;
  /** v1: labelled with the compact form; with SACK blocks cut; with options removed (docs/label-v1.md). */
  compact: number;
  sackTrimmed: number;
  optionsRemoved: number;
  /** The input ends inside a record: the output holds the complete frames before it. */
  truncated?: string;
}

export interface LabelCaptureOptions {
  /** Output format; default: the input's. pcap output from pcapng input needs a single link type. */
  format?: CaptureFormat;
  onFrame?: (frame: number, labelled: boolean, reason?: string) => void;
  onProgress?: Progress;
  /** v1: the app tag and NAT flags (NAT_* bits) every label carries. */
  tag?: number;
  nat?: number;
}

/**
 * Labels every TCP packet of a capture into a new file with `profile`; every other frame is copied unchanged.
 * pcap in → pcap out (same link type and precision); pcapng in → pcapng out (one section, the
 * input's interfaces with their link types and timestamp resolutions, declared as first used).
 */
export async function labelCapture(
  profile: LabelProfile,
  inFile: string,
  outFile: string,
  key: LabelKey,
  opts: LabelCaptureOptions = {},
): Promise<LabelCounts & { format: CaptureFormat }> {
  const reader = await CaptureReader.open(inFile);
  const counts: LabelCounts = { total: 0, labelled: 0, skipped: 0, malformed: 0, compact: 0, sackTrimmed: 0, optionsRemoved: 0 };
  const format = opts.format ?? reader.info.format;
  let pcapOut: PcapWriter | undefined;
  let ngOut: PcapngWriter | undefined;
  const ifMap = new Map<string, number>();
  let pcapLinktype = -1;
  let ok = false;
  let closeError: unknown;
  // Only a regular file (or a new one) is removed after a failure: an output that is a device
  // (/dev/stdout, /dev/full), a FIFO or a socket is written to, never unlinked.
  const removable = await lstat(outFile).then(
    (s) => s.isFile(),
    () => true,
  );
  const ctx: PacketContext = { tag: opts.tag, nat: opts.nat };
  let frame = 0;
  // What the output format cannot hold (a timestamp moved by if_tsoffset, a 32-bit link type)
  // is the input's problem, reported like one: file, offset, frame.
  const asCaptureError = (e: unknown): unknown =>
    e instanceof RangeError
      ? new CaptureError(inFile, reader.position, `frame ${frame} cannot be written: ${e.message}`)
      : typeof (e as NodeJS.ErrnoException)?.code === 'string'
        ? new OutputError(outFile, 'cannot write output', e)
        : e;
  const unwritable = <T>(write: () => T): T => {
    try {
      const r = write();
      return (r instanceof Promise ? r.catch((e: unknown) => Promise.reject(asCaptureError(e))) : r) as T;
    } catch (e) {
      throw asCaptureError(e);
    }
  };
  try {
    try {
      if (format === 'pcap' && reader.info.format === 'pcap') {
        pcapOut = await PcapWriter.create(outFile, {
          linktype: reader.info.linktype,
          nanosecond: reader.info.nanosecond,
          snaplen: Math.max(reader.info.snaplen, 262144),
        });
        pcapLinktype = reader.info.linktype;
      } else if (format === 'pcapng') {
        ngOut = await PcapngWriter.create(outFile);
      }
    } catch (e) {
      throw new OutputError(outFile, 'cannot create output', e);
    }
    for await (const batch of reader.batches()) {
      for (const rec of batch) {
        counts.total++;
        frame = rec.frame;
        ctx.timeMs = recordTimeMs(rec);
        const r = labelFrame(profile, rec.linktype, rec.data, key, ctx);
        let data: Uint8Array = rec.data;
        let origLen = rec.origLen;
        if (r.labelled) {
          counts.labelled++;
          if (r.compact) counts.compact++;
          if (r.sackTrimmed) counts.sackTrimmed++;
          if (r.optionsRemoved) counts.optionsRemoved++;
          data = r.frame;
          origLen = rec.origLen + (r.frame.length - rec.data.length);
        } else {
          counts[r.verdict]++;
        }
        opts.onFrame?.(rec.frame, r.labelled, r.labelled ? undefined : `${r.verdict}: ${r.reason}`);
        if (format === 'pcap') {
          if (!pcapOut) {
            // pcapng → pcap: the first interface's link type decides; others are an error.
            pcapLinktype = rec.linktype;
            pcapOut = await PcapWriter.create(outFile, { linktype: rec.linktype, nanosecond: rec.tsUnitsPerSec > 1e6 });
          } else if (rec.linktype !== pcapLinktype) {
            throw new CaptureError(
              inFile,
              reader.position,
              `frame ${rec.frame} has link type ${rec.linktype} but the pcap output has ${pcapLinktype}; write pcapng instead`,
            );
          }
          const p = unwritable(() => pcapOut!.write(data, rec, origLen));
          if (p) await p;
        } else {
          const k = `${rec.section}:${rec.ifIndex}`;
          let id = ifMap.get(k);
          if (id === undefined) {
            const iface = { linktype: rec.linktype, snaplen: 0, tsUnitsPerSec: rec.tsUnitsPerSec, name: rec.iface?.name };
            id = await unwritable(() => ngOut!.addInterface(iface));
            ifMap.set(k, id);
          }
          const p = unwritable(() => ngOut!.write(id!, data, rec, origLen));
          if (p) await p;
        }
      }
      opts.onProgress?.(reader.position, reader.size);
    }
    if (!pcapOut && !ngOut) {
      // Empty pcapng input asked to become pcap: still write a valid (empty) file.
      pcapOut = await PcapWriter.create(outFile, { linktype: reader.info.linktype >= 0 ? reader.info.linktype : 1 });
    }
    opts.onProgress?.(reader.position, reader.size);
    if (reader.truncated) counts.truncated = reader.truncated.message;
    ok = true;
  } finally {
    await reader.close();
    // Closing writes what is still buffered: a failure there is the output's too.
    for (const w of [pcapOut, ngOut]) {
      try {
        await w?.close();
      } catch (e) {
        closeError ??= e;
      }
    }
    // A half-written output is worse than none.
    if ((!ok || closeError !== undefined) && (pcapOut || ngOut) && removable) await unlink(outFile).catch(() => undefined);
  }
  // Reached only when the loop ended without an error.
  if (closeError !== undefined) throw asCaptureError(closeError);
  return { ...counts, format };
}
