// Client side of the control socket (used by `labelwall status` and `labelwall flows`).
import * as fs from 'node:fs';
import { request } from 'node:http';
import { describeFileType } from '../util/files.js';

/** What a path that takes no connection is, when it exists and is not a socket (a regular file, a directory). */
function notASocket(socketPath: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(socketPath);
  } catch {
    return undefined;
  }
  return st.isSocket() ? undefined : describeFileType(st);
}

export function controlGet(socketPath: string, path: string, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) reject(new Error(`${path}: HTTP ${res.statusCode}: ${body.trim()}`));
        else resolve(body);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer on ${socketPath} within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const what = err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK' ? notASocket(socketPath) : undefined;
      if (what !== undefined) {
        reject(new Error(`${socketPath} is not a socket (${what}): give the control socket of a running labelwall (--control-socket)`));
      } else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new Error(`nothing is listening on ${socketPath}: is labelwall running? (--control-socket selects another)`));
      } else reject(err);
    });
    req.end();
  });
}
