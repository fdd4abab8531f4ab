// Who may read the ui: whoever shows the token printed at start, as `?token=` (the URL to
// open), the cookie the server then sets, or an `Authorization: Bearer` header. Pure.
import { randomBytes, timingSafeEqual } from 'node:crypto';

export const COOKIE = 'labelwall_ui';

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The token a request presents, and where: query, cookie or header. */
export function presentedToken(
  url: URL,
  headers: { cookie?: string | undefined; authorization?: string | undefined },
): { token: string; from: 'query' | 'cookie' | 'header' } | undefined {
  const q = url.searchParams.get('token');
  if (q) return { token: q, from: 'query' };
  const auth = headers.authorization;
  if (auth?.startsWith('Bearer ')) return { token: auth.slice(7).trim(), from: 'header' };
  for (const part of (headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === COOKIE) return { token: part.slice(i + 1).trim(), from: 'cookie' };
  }
  return undefined;
}

export function authorized(
  token: string,
  url: URL,
  headers: { cookie?: string | undefined; authorization?: string | undefined },
): 'query' | 'cookie' | 'header' | false {
  const p = presentedToken(url, headers);
  return p && same(p.token, token) ? p.from : false;
}
