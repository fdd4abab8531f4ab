// `--listen HOST:PORT` of `labelwall ui` (pure): 127.0.0.1:8080, [::1]:8080, :8080 (loopback),
// or a port alone.
import { isIP } from 'node:net';

export interface Listen {
  host: string;
  port: number;
  loopback: boolean;
}

export function parseListen(text: string): Listen {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):([0-9]{1,5})$/.exec(text) ?? /^()()([0-9]{1,5})$/.exec(text);
  if (!m) throw new Error(`--listen: expected HOST:PORT (127.0.0.1:8080, [::1]:8080) or PORT, got "${text}"`);
  const host = m[1] || m[2] || '127.0.0.1';
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`--listen: port ${port} is not 0-65535`);
  if (host !== 'localhost' && isIP(host) === 0)
    throw new Error(`--listen: "${host}" is not an IP address (give the address to listen on, e.g. 127.0.0.1)`);
  const loopback = host === 'localhost' || host === '::1' || /^127\./.test(host);
  return { host: host === 'localhost' ? '127.0.0.1' : host, port, loopback };
}
