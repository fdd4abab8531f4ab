// v1's NAT tolerance flags as the config knows them. The same values as NAT_SRC/NAT_DST/NAT_PORTS
// in label/profile.ts (config imports only util; a unit test holds them equal).
export const NAT_SRC = 1;
export const NAT_DST = 2;
export const NAT_PORTS = 4;

/** The parts of `translated` / `allow_nat` (pcap's --nat and --allow-nat take the same names) and their flags. */
export const NAT_PART_BITS: Readonly<Record<'source' | 'destination' | 'ports', number>> = {
  source: NAT_SRC,
  destination: NAT_DST,
  ports: NAT_PORTS,
};

/**
 * Ports are translated only together with an address (v1's P needs S or D): the problem with a
 * list of parts, or undefined. The config's `translated` / `allow_nat` and pcap's --nat and
 * --allow-nat are refused with it alike.
 */
export function natPartsProblem(parts: readonly unknown[]): string | undefined {
  return parts.includes('ports') && !parts.includes('source') && !parts.includes('destination')
    ? 'ports needs source or destination too (the P flag only says which ports of a translated address are left out)'
    : undefined;
}
