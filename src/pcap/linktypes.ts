// Link-layer header types (https://www.tcpdump.org/linktypes.html) that labelwall understands.
export const LINKTYPE_NULL = 0; // BSD loopback: 4-byte address family in host byte order
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101; // raw IPv4 or IPv6, by the version nibble
export const LINKTYPE_LOOP = 108; // OpenBSD loopback: 4-byte address family in network byte order
export const LINKTYPE_LINUX_SLL = 113; // Linux cooked capture v1
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276; // Linux cooked capture v2

export const LINKTYPE_NAMES: Readonly<Record<number, string>> = {
  [LINKTYPE_NULL]: 'null',
  [LINKTYPE_ETHERNET]: 'ethernet',
  [LINKTYPE_RAW]: 'raw',
  [LINKTYPE_LOOP]: 'loop',
  [LINKTYPE_LINUX_SLL]: 'linux-sll',
  [LINKTYPE_IPV4]: 'ipv4',
  [LINKTYPE_IPV6]: 'ipv6',
  [LINKTYPE_LINUX_SLL2]: 'linux-sll2',
};

export function linktypeName(lt: number): string {
  return LINKTYPE_NAMES[lt] ?? `linktype ${lt}`;
}
