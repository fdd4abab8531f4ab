// A live uPlot chart of some of one source's series: the last hour from /api/history at
// mount, then one point a second from the stream (the `point` prop). The data is also
// reachable as window.labelwallCharts[id] (what the browser tests read).
import { h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import uPlot from 'uplot';
import { api } from './api.js';

const html = htm.bind(h);
const COLOURS = {
  valid: '#16a34a',
  invalid: '#dc2626',
  unlabelled: '#ea580c',
  malformed: '#9333ea',
  queueDrops: '#111827',
  verifiedMbps: '#0891b2',
  labelled: '#2563eb',
  allowed: '#16a34a',
  denied: '#dc2626',
  labelledMbps: '#0891b2',
};
const KEEP = 3600;
window.labelwallCharts = window.labelwallCharts || {};

export function Chart({ id, source, keys, title, unit, point, t }) {
  const box = useRef(null);
  const plot = useRef(null);
  const data = useRef(null);
  const [err, setErr] = useState(null);

  useEffect(() => {
    let gone = false;
    let ro;
    setErr(null);
    api(`/api/history?source=${source}`)
      .then((hist) => {
        if (gone || !box.current) return;
        const idx = keys.map((k) => hist.series.findIndex((s) => s.key === k));
        data.current = [hist.columns[0] || [], ...idx.map((i) => (i >= 0 ? hist.columns[i + 1] : []))];
        const labels = idx.map((i, n) => (i >= 0 ? hist.series[i].label : keys[n]));
        const width = Math.max(240, box.current.clientWidth);
        plot.current = new uPlot(
          {
            width,
            height: 180,
            legend: { live: false },
            scales: { x: { time: true } },
            axes: [{}, { size: 56, label: unit }],
            series: [{}, ...keys.map((k, n) => ({ label: labels[n], stroke: COLOURS[k] || '#555', width: 1.5, points: { show: false } }))],
          },
          data.current,
          box.current,
        );
        window.labelwallCharts[id] = { keys, labels, data: data.current };
        ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(240, box.current.clientWidth), height: 180 }));
        ro.observe(box.current);
      })
      // Without its history the chart has nothing to draw on: say why instead of an empty box.
      .catch((e) => {
        if (!gone) setErr(`no history for this chart: ${e.message}`);
      });
    return () => {
      gone = true;
      ro?.disconnect();
      plot.current?.destroy();
      delete window.labelwallCharts[id];
    };
  }, [id, source]);

  useEffect(() => {
    const d = data.current;
    if (!d || !point || !t) return;
    const ts = Math.round(t / 100) / 10;
    if (d[0].length && d[0][d[0].length - 1] >= ts) return;
    d[0].push(ts);
    keys.forEach((k, n) => d[n + 1].push(point[k] ?? null));
    if (d[0].length > KEEP) for (const c of d) c.splice(0, c.length - KEEP);
    plot.current?.setData(d);
  }, [t]);

  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    ${err ? html`<p class="error" data-chart-error=${id}>${err}</p>` : null}
    <div ref=${box} class="plot" data-chart=${id}></div>
  </figure>`;
}
