// The page of `labelwall ui`: Preact components written with htm (tagged templates: no build
// step). Reads the ui server's read-only API (/api/overview, /api/flows, /api/history) and
// its event stream (/api/stream, one tick a second).
import { h, render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';
import { api } from './api.js';
import { Chart } from './charts.js';

const html = htm.bind(h);
const PAGE = 100;

const num = (v) => (v ?? 0).toLocaleString('en-GB');
const rate = (v) => (v === undefined || v === null ? '–' : v >= 100 ? v.toFixed(0) : v.toFixed(1));
const bytes = (b) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : b >= 1e3 ? `${(b / 1e3).toFixed(1)} kB` : `${b} B`);
const time = (iso) => (iso ? iso.slice(11, 19) : '');
const uptime = (s) => (s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min` : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`);
const endpoint = (a, p) => (a?.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
const userOf = (f) => [...new Set(f.holders.map((x) => x.user ?? String(x.uid)))].join(', ');

function Warnings({ sources }) {
  const all = sources.flatMap((s) => s.warnings.map((w) => ({ s, w })));
  if (!all.length) return null;
  return html`<section class="warnings" data-testid="warnings">
    ${all.map(({ s, w }) => html`<div class="warning"><b>${s.role ?? s.socket}</b> ${w}</div>`)}
  </section>`;
}

function configLine(s) {
  const c = s.config ?? {};
  if (s.role === 'verifier') {
    const acts = [...new Set((c.rules ?? []).map((r) => r.action))].join('/');
    return `profile ${c.profile}, hook ${c.hook}, action ${acts}, fail ${c.fail}`;
  }
  if (s.role === 'agent') {
    const eg = typeof c.egress === 'object' ? `egress policy: ${c.egress.rules} rule(s), default ${c.egress.default}` : 'egress policy off';
    return `profile ${c.profile}, key ${c.key}, fail ${c.fail}, ${eg}`;
  }
  return '';
}

const TOTALS = {
  verifier: [
    ['valid', 'valid'],
    ['invalid', 'invalid'],
    ['unlabelled', 'unlabelled'],
    ['malformed', 'malformed'],
    ['dropped', 'dropped'],
  ],
  agent: [
    ['labelled', 'labelled'],
    ['egress_allowed', 'flows allowed'],
    ['egress_denied', 'flows denied'],
  ],
};
// Every other non-zero counter (bytes are the Mbit/s total), so that what the totals leave out
// (compact labels, trimmed SACK, segments sent unlabelled, ...) is still on the card.
function OtherCounters({ s }) {
  const shown = new Set((TOTALS[s.role] ?? []).map(([k]) => k));
  const rest = Object.entries(s.counters ?? {}).filter(([k, n]) => n > 0 && !shown.has(k) && !k.endsWith('_bytes'));
  if (!rest.length) return null;
  return html`<p class="muted other-counters" data-testid="other-counters">
    ${rest.map(([k, n], i) => html`${i ? ' · ' : ''}<span data-counter=${k}>${k.replace(/_/g, ' ')} <b>${num(n)}</b></span>`)}
  </p>`;
}

const RATE_KEY = { valid: 'valid', invalid: 'invalid', unlabelled: 'unlabelled', malformed: 'malformed', labelled: 'labelled', egress_allowed: 'allowed', egress_denied: 'denied' };

function RoleCard({ s, tick }) {
  const live = tick?.sources.find((x) => x.id === s.id);
  const point = live?.point ?? s.point;
  if (!s.ok || !s.role)
    return html`<section class="card down" data-role=${s.role ?? 'unknown'}>
      <h2>${s.socket}</h2>
      <p class="error">${s.error}</p>
    </section>`;
  const v = s.role === 'verifier';
  return html`<section class="card" data-role=${s.role} data-source=${s.id}>
    <h2>${s.role} <span class="muted">pid ${s.pid}, up ${uptime(s.uptimeSeconds)}, ${s.socket}</span></h2>
    <p class="muted">${configLine(s)}</p>
    <div class="totals">
      ${(TOTALS[s.role] ?? []).map(
        ([k, label]) => html`<div class="total ${k}" data-counter=${k}>
          <span class="n">${num(s.counters?.[k])}</span><span class="l">${label}</span
          ><span class="r">${RATE_KEY[k] ? `${rate(point?.[RATE_KEY[k]])}/s` : ''}</span>
        </div>`,
      )}
      <div class="total" data-counter="mbps">
        <span class="n">${rate(point?.[v ? 'verifiedMbps' : 'labelledMbps'])}</span><span class="l">Mbit/s ${v ? 'verified' : 'labelled'}</span>
      </div>
    </div>
    <${OtherCounters} s=${s} />
    <div class="charts">
      <${Chart}
        id=${`${s.id}:${v ? 'verdicts' : 'labels'}`}
        source=${s.id}
        keys=${v ? ['valid', 'invalid', 'unlabelled', 'malformed', 'queueDrops'] : ['labelled', 'allowed', 'denied', 'queueDrops']}
        title=${v ? 'verdicts per second' : 'segments labelled and flows decided per second'}
        unit="/s"
        point=${live?.point}
        t=${tick?.t}
      />
      <${Chart}
        id=${`${s.id}:mbps`}
        source=${s.id}
        keys=${[v ? 'verifiedMbps' : 'labelledMbps']}
        title=${v ? 'verified Mbit/s (valid segments)' : 'labelled Mbit/s'}
        unit="Mbit/s"
        point=${live?.point}
        t=${tick?.t}
      />
    </div>
  </section>`;
}

function Apps({ ov, onPick, picked }) {
  if (!ov.flowCount) return null;
  return html`<section class="card wide" data-testid="apps">
    <h2>Applications <span class="muted">${num(ov.appCount)} application(s), ${num(ov.flowCount)} flow(s)${ov.appCount > ov.apps.length ? `, the ${ov.apps.length} with most flows` : ''}</span></h2>
    <div class="scroll">
      <table>
        <thead>
          <tr><th>application</th><th>users</th><th>unit / container</th><th>tag</th><th class="num">flows</th><th class="num">allowed</th><th class="num">denied</th><th class="num">destinations</th><th class="num">bytes labelled</th><th>last seen</th></tr>
        </thead>
        <tbody>
          ${ov.apps.map(
            (a) => html`<tr class=${`${a.denied ? 'has-deny' : ''} ${picked === a.app ? 'picked' : ''}`} data-app=${a.app}>
              <td><a href="#" onClick=${(e) => { e.preventDefault(); onPick(picked === a.app ? undefined : a.app); }} title="show only its flows">${a.app}</a></td>
              <td>${a.users.join(', ')}</td>
              <td>${a.units.join(', ')}</td>
              <td>${a.tags.join(', ')}</td>
              <td class="num">${num(a.flows)}</td>
              <td class="num">${num(a.allowed)}</td>
              <td class="num deny">${a.denied ? num(a.denied) : ''}</td>
              <td class="num">${num(a.destinations)}</td>
              <td class="num">${bytes(a.bytesLabelled)}</td>
              <td>${time(a.lastSeen)}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
  </section>`;
}

const COLUMNS = [
  ['app', 'application'],
  ['user', 'user'],
  ['dst', 'destination'],
  ['proto', 'proto'],
  ['verdict', 'verdict'],
  ['rule', 'rule'],
  ['tag', 'tag'],
  ['bytesLabelled', 'bytes labelled', 'num'],
  ['firstSeen', 'first seen'],
  ['lastSeen', 'last seen'],
];

// `up`: the sources that answer; a change (an agent stopped or came back) changes the table.
function Flows({ flowsAt, up, app, onApp, hasAgent }) {
  const [q, setQ] = useState('');
  const [typed, setTyped] = useState('');
  const [sort, setSort] = useState({ key: 'lastSeen', dir: 'desc' });
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState(null);
  const [err, setErr] = useState(null);
  useEffect(() => {
    const t = setTimeout(() => {
      setQ(typed);
      setOffset(0);
    }, 200);
    return () => clearTimeout(t);
  }, [typed]);
  useEffect(() => setOffset(0), [app]);
  useEffect(() => {
    const p = new URLSearchParams({ q, sort: sort.key, dir: sort.dir, offset: String(offset), limit: String(PAGE) });
    if (app) p.set('app', app);
    api(`/api/flows?${p}`).then(
      (r) => {
        setPage(r);
        setErr(null);
      },
      (e) => setErr(e.message),
    );
  }, [q, sort, offset, app, flowsAt, up]);
  if (!hasAgent) return null;
  const by = (key) => setSort((s) => ({ key, dir: s.key === key && s.dir === 'desc' ? 'asc' : 'desc' }));
  const last = page ? Math.min(page.offset + page.rows.length, page.matched) : 0;
  return html`<section class="card wide" data-testid="flows">
    <h2>Flows</h2>
    <div class="toolbar">
      <input type="search" placeholder="filter: application, user, destination, port, rule, verdict…" value=${typed} onInput=${(e) => setTyped(e.target.value)} data-testid="filter" aria-label="filter flows" />
      ${app ? html`<button class="chip" onClick=${() => onApp(undefined)} title="show every application">${app} ✕</button>` : null}
      <span class="muted" data-testid="flow-count">${page ? `${page.matched ? `${num(page.offset + 1)}–${num(last)} of ` : ''}${num(page.matched)} flow(s)${page.matched !== page.total ? ` (of ${num(page.total)})` : ''}` : ''}</span>
      <span class="pager">
        <button disabled=${!page || page.offset === 0} onClick=${() => setOffset(Math.max(0, offset - PAGE))}>‹ newer</button>
        <button disabled=${!page || last >= page.matched} onClick=${() => setOffset(offset + PAGE)}>older ›</button>
      </span>
    </div>
    ${err ? html`<p class="error">${err}</p>` : null}
    <div class="scroll">
      <table class="flows">
        <thead>
          <tr>
            ${COLUMNS.map(([k, label, cls]) => html`<th class=${`${cls ?? ''} sortable`} onClick=${() => by(k)} aria-sort=${sort.key === k ? (sort.dir === 'asc' ? 'ascending' : 'descending') : 'none'}>${label}${sort.key === k ? (sort.dir === 'asc' ? ' ▲' : ' ▼') : ''}</th>`)}
          </tr>
        </thead>
        <tbody>
          ${(page?.rows ?? []).map(
            (f) => html`<tr class=${`v-${f.verdict}`} data-app=${f.app}>
              <td title=${f.holders.map((x) => `pid ${x.pid} ${x.exe}${x.unit ? ` (${x.unit})` : ''}`).join('\n')}>${f.app}${f.holders.length > 1 ? html` <span class="muted">+${f.holders.length - 1}</span>` : null}</td>
              <td>${userOf(f)}</td>
              <td>${f.proto === 'icmp' ? f.dst : endpoint(f.dst, f.dport)}</td>
              <td>${f.proto}${f.family === 6 ? '6' : ''}</td>
              <td class="verdict">${f.verdict}</td>
              <td>${f.rule}</td>
              <td>${f.tagName ?? (f.tag ? f.tag : '')}</td>
              <td class="num">${bytes(f.bytesLabelled)}</td>
              <td>${time(f.firstSeen)}</td>
              <td>${time(f.lastSeen)}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
  </section>`;
}

function eventText(e) {
  if (e.role === 'agent') {
    const h0 = (e.holders ?? [])[0];
    const who = h0 ? `${h0.exe} (pid ${h0.pid}, ${h0.user ?? `uid ${h0.uid}`})` : e.unknown ? 'an unknown process' : '?';
    const to = e.proto === 'icmp' ? e.dst : endpoint(e.dst, e.dport);
    return html`<b class="deny">flow denied</b> ${who} → ${e.proto}${e.family === 6 ? '6' : ''} ${to}, rule <b>${e.rule}</b>${e.reason ? `, ${e.reason}` : ''}`;
  }
  const tag = e.tag !== undefined ? `, tag ${e.tagName ?? e.tag}` : '';
  return html`<b class=${e.verdict}>${e.verdict}${e.reason ? `: ${e.reason}` : ''}</b> ${e.src ? `${endpoint(e.src, e.sport)} → ${endpoint(e.dst, e.dport)}` : ''}, rule <b>${e.rule ?? '?'}</b>, ${e.action}${tag}${e.in ? `, in ${e.in}` : ''}`;
}

function Events({ events }) {
  return html`<section class="card" data-testid="events">
    <h2>Recent denials and refusals <span class="muted">${events.length ? `newest first, ${events.length}` : ''}</span></h2>
    ${events.length === 0 ? html`<p class="muted">none so far</p>` : null}
    <ul class="events">
      ${events.slice(0, 60).map((e) => html`<li data-role=${e.role}><span class="muted">${time(e.time)} ${e.role}</span> ${eventText(e)}</li>`)}
    </ul>
  </section>`;
}

function Rules({ ov }) {
  if (!ov.egressRules.length && !ov.verifierRules.length) return null;
  return html`<section class="card" data-testid="rules">
    <h2>Rules</h2>
    ${ov.egressRules.map(
      (g) => html`<h3>agent egress policy <span class="muted">default ${g.default}, unknown process ${g.unknown}</span></h3>
        <div class="scroll"><table>
          <thead><tr><th>rule</th><th>action</th><th>matches</th><th>tag</th><th class="num">flows</th></tr></thead>
          <tbody>
            ${g.rules.map((r) => html`<tr data-rule=${r.name}><td>${r.name}</td><td class=${r.action}>${r.action}</td><td>${r.match}</td><td>${r.tagName ?? r.tag ?? ''}</td><td class="num">${num(r.flows)}</td></tr>`)}
            ${Object.entries(g.other).map(([k, n]) => html`<tr data-rule=${k}><td>${k}</td><td class="muted" colspan="3">${k === 'default' ? `no rule matched: default ${g.default}` : k === 'unknown' ? `no process found: ${g.unknown}` : 'a rule no longer in the policy'}</td><td class="num">${num(n)}</td></tr>`)}
          </tbody>
        </table></div>`,
    )}
    ${ov.verifierRules.map(
      (g) => html`<h3>verifier rules <span class="muted">first match wins</span></h3>
        <div class="scroll"><table>
          <thead><tr><th>rule</th><th>action</th><th>keys</th><th>tags</th></tr></thead>
          <tbody>${g.rules.map((r) => html`<tr><td>${r.name}</td><td>${r.action}</td><td>${(r.keys ?? []).join(', ')}</td><td>${(r.tags ?? []).join(', ') || 'any'}</td></tr>`)}</tbody>
        </table></div>`,
    )}
  </section>`;
}

function App() {
  const [ov, setOv] = useState(null);
  const [tick, setTick] = useState(null);
  const [err, setErr] = useState(null);
  const [app, setApp] = useState(undefined);
  useEffect(() => {
    const load = () =>
      api('/api/overview').then(
        (o) => {
          setOv(o);
          setErr(null);
        },
        (e) => setErr(e.message),
      );
    load();
    const es = new EventSource('/api/stream');
    es.addEventListener('tick', (e) => {
      setTick(JSON.parse(e.data));
      load();
    });
    es.onerror = () => setErr('the stream from labelwall ui was interrupted; reconnecting…');
    return () => es.close();
  }, []);
  if (!ov) return html`<p class=${err ? 'error' : 'muted'}>${err ?? 'loading…'}</p>`;
  const up = ov.sources.filter((s) => s.ok).length;
  return html`<header>
      <h1>labelwall</h1>
      <span class="muted">${up} of ${ov.sources.length} control socket(s) answering · updated ${time(ov.generatedAt)} · read-only</span>
    </header>
    ${err ? html`<p class="error">${err}</p>` : null}
    <${Warnings} sources=${ov.sources} />
    <main>
      ${ov.sources.map((s) => html`<${RoleCard} key=${s.id} s=${s} tick=${tick} />`)}
      <${Events} events=${ov.events} />
      <${Rules} ov=${ov} />
      <${Apps} ov=${ov} onPick=${setApp} picked=${app} />
      <${Flows} flowsAt=${tick?.flowsAt} up=${ov.sources.filter((s) => s.ok).map((s) => s.id).join(',')} app=${app} onApp=${setApp} hasAgent=${ov.sources.some((s) => s.role === 'agent')} />
    </main>`;
}

render(html`<${App} />`, document.getElementById('app'));
