// From a captured frame to the IP packet inside it, and back. Pure functions over bytes.
import {
  LINKTYPE_ETHERNET,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_LOOP,
  LINKTYPE_NULL,
  LINKTYPE_RAW,
  linktypeName,
} from './linktypes.js';

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_VLAN = 0x8100; // 802.1Q
export const ETHERTYPE_QINQ = 0x88a8; // 802.1ad
export const ETHERTYPE_QINQ_OLD = 0x9100;

export type LinkDecode =
  /** The IP packet starts at ipOffset; family from the link header when it says (0 for raw). */
  { kind: 'ip'; ipOffset: number; family: 0 | 4 | 6 } | { kind: 'skipped'; reason: string } | { kind: 'malformed'; reason: string };

const MAX_VLAN_TAGS = 8;

function fromEtherType(et: number, off: number, what: string): LinkDecode {
  if (et === ETHERTYPE_IPV4) return { kind: 'ip', ipOffset: off, family: 4 };
  if (et === ETHERTYPE_IPV6) return { kind: 'ip', ipOffset: off, family: 6 };
  return { kind: 'skipped', reason: `not-ip (${what} 0x${et.toString(16).padStart(4, '0')})` };
}

/** Finds the IP packet in a frame of the given link type. */
export function decodeLink(linktype: number, frame: Uint8Array): LinkDecode {
  switch (linktype) {
    case LINKTYPE_ETHERNET: {
      if (frame.length < 14) return { kind: 'malformed', reason: 'truncated-link' };
      let off = 12;
      let et = (frame[off]! << 8) | frame[off + 1]!;
      for (let tags = 0; et === ETHERTYPE_VLAN || et === ETHERTYPE_QINQ || et === ETHERTYPE_QINQ_OLD; tags++) {
        if (tags >= MAX_VLAN_TAGS) return { kind: 'malformed', reason: 'too-many-vlan-tags' };
        off += 4;
        if (frame.length < off + 2) return { kind: 'malformed', reason: 'truncated-link' };
        et = (frame[off]! << 8) | frame[off + 1]!;
      }
      if (et <= 1500) return { kind: 'skipped', reason: 'not-ip (802.3 length frame)' };
      return fromEtherType(et, off + 2, 'ethertype');
    }
    case LINKTYPE_RAW:
      return { kind: 'ip', ipOffset: 0, family: 0 };
    case LINKTYPE_IPV4:
      return { kind: 'ip', ipOffset: 0, family: 4 };
    case LINKTYPE_IPV6:
      return { kind: 'ip', ipOffset: 0, family: 6 };
    case LINKTYPE_LINUX_SLL:
      if (frame.length < 16) return { kind: 'malformed', reason: 'truncated-link' };
      return fromEtherType((frame[14]! << 8) | frame[15]!, 16, 'protocol');
    case LINKTYPE_LINUX_SLL2:
      if (frame.length < 20) return { kind: 'malformed', reason: 'truncated-link' };
      return fromEtherType((frame[0]! << 8) | frame[1]!, 20, 'protocol');
    case LINKTYPE_NULL:
    case LINKTYPE_LOOP: {
      if (frame.length < 4) return { kind: 'malformed', reason: 'truncated-link' };
      // NULL is in the capturing host's byte order: accept either.
      const be = ((frame[0]! << 24) >>> 0) + ((frame[1]! << 16) | (frame[2]! << 8) | frame[3]!);
      const le = ((frame[3]! << 24) >>> 0) + ((frame[2]! << 16) | (frame[1]! << 8) | frame[0]!);
      const af = linktype === LINKTYPE_LOOP ? be : be < 256 ? be : le;
      if (af === 2) return { kind: 'ip', ipOffset: 4, family: 4 };
      if (af === 24 || af === 28 || af === 30 || af === 10) return { kind: 'ip', ipOffset: 4, family: 6 };
      return { kind: 'skipped', reason: `not-ip (address family ${af})` };
    }
    default:
      return { kind: 'skipped', reason: `unsupported link type (${linktypeName(linktype)})` };
  }
}

/** True when the IP version nibble agrees with what the link header said (always for raw). */
export function familyMatches(family: 0 | 4 | 6, ip: Uint8Array): boolean {
  if (family === 0) return true;
  return ip.length > 0 && ip[0]! >> 4 === family;
}
