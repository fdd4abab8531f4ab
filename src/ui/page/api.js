// GET of the ui server's read-only API: the JSON, or an Error naming the path, the HTTP status
// and the server's one-line reason.
export async function api(path) {
  const r = await fetch(path, { credentials: 'same-origin' });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${(await r.text()).trim()}`);
  return r.json();
}
