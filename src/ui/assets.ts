// The files the page is made of: its own (src/ui/page, served as they are: no build step) and
// the libraries it imports, read from node_modules where npm installed them (no CDN: a host
// behind a firewall has no internet). Read once at start; the browser's import map names them.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Asset {
  type: string;
  body: Buffer;
}

// The package root from this module (dist/src/ui/assets.js): an installed labelwall has no lab.
const PAGE_DIR = fileURLToPath(new URL('../../../src/ui/page/', import.meta.url));

/** URL path -> module specifier resolved from here (the page's libraries, pinned in package.json). */
const VENDOR: Record<string, string> = {
  '/vendor/preact.mjs': 'preact',
  '/vendor/hooks.mjs': 'preact/hooks',
  '/vendor/htm.mjs': 'htm',
  '/vendor/uPlot.esm.js': 'uplot/dist/uPlot.esm.js',
  '/vendor/uPlot.min.css': 'uplot/dist/uPlot.min.css',
};

/** The import map of the page: bare specifiers in app.js -> the vendor paths above. */
export const IMPORT_MAP = JSON.stringify({
  imports: { preact: '/vendor/preact.mjs', 'preact/hooks': '/vendor/hooks.mjs', htm: '/vendor/htm.mjs', uplot: '/vendor/uPlot.esm.js' },
});

const typeOf = (p: string): string =>
  p.endsWith('.css')
    ? 'text/css; charset=utf-8'
    : p.endsWith('.html')
      ? 'text/html; charset=utf-8'
      : p.endsWith('.svg')
        ? 'image/svg+xml'
        : 'text/javascript; charset=utf-8';

/** Every asset by URL path, and the CSP hash of the inline import map. */
export function loadAssets(): { assets: Map<string, Asset>; importMapHash: string } {
  const assets = new Map<string, Asset>();
  for (const [path, spec] of Object.entries(VENDOR)) {
    const file = fileURLToPath(import.meta.resolve(spec));
    // The source map comment points at a file we do not serve.
    const text = readFileSync(file, 'utf8').replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, '\n');
    assets.set(path, { type: typeOf(path), body: Buffer.from(text) });
  }
  const html = readFileSync(join(PAGE_DIR, 'index.html'), 'utf8').replace('{{IMPORT_MAP}}', IMPORT_MAP);
  assets.set('/', { type: typeOf('.html'), body: Buffer.from(html) });
  for (const f of ['app.js', 'api.js', 'charts.js', 'style.css', 'favicon.svg']) {
    assets.set(`/${f}`, { type: typeOf(f), body: readFileSync(join(PAGE_DIR, f)) });
  }
  const importMapHash = `sha256-${createHash('sha256').update(IMPORT_MAP).digest('base64')}`;
  return { assets, importMapHash };
}
