// Why a packet could not be parsed or judged. One string union shared by every parser, so
// that verdict reasons in the CLI, logs and counters are stable, greppable words. Reasons
// about a label itself belong to the label profiles (label/profile.ts).
export type MalformedReason =
  | 'truncated-ip' // buffer shorter than the IP header or than the IP total length
  | 'bad-ip-version' // first nibble neither 4 nor 6
  | 'bad-ihl' // IPv4 header length < 20 or beyond the packet
  | 'bad-total-length' // IPv4 total length < header length / IPv6 payload length 0 (jumbogram)
  | 'fragment' // IPv4 MF/offset or IPv6 fragment header: TCP cannot be judged
  | 'truncated-ext-header' // IPv6 extension header runs past the packet
  | 'truncated-tcp' // fewer than 20 bytes of TCP
  | 'bad-data-offset' // TCP data offset < 5 words or beyond the segment
  | 'bad-option-length' // TCP option length < 2, past the header, or wrong for its kind
  | 'too-large'; // the labelled packet would not fit IP's length field (IPv4 65,535 bytes, IPv6 40 + 65,535)
