// Client side of the control socket (used by `labelwall status` and `labelwall flows`).
import { request } from 'node:http';

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
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new Error(`nothing is listening on ${socketPath}: is labelwall running? (--control-socket selects another)`));
      } else reject(err);
    });
    req.end();
  });
}
