// The mesh page: polls the control plane's /debug/meshz and renders it (ADR 0095). Plain ES
// module, no build step, no dependencies. Every value from the server is set as text (never as
// HTML): names, NACK messages and errors come from config and proxies.

const POLL_MS = 3000;

/** Builds an element; string and number children become text nodes. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function ago(iso, now = Date.now()) {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

export function rate(rps) {
  if (rps === undefined) return '…';
  return rps >= 100 ? rps.toFixed(0) : rps >= 10 ? rps.toFixed(1) : rps.toFixed(2);
}

export function percent(ratio) {
  if (ratio === undefined) return '-';
  return `${(ratio * 100).toFixed(ratio > 0 && ratio < 0.01 ? 2 : 1)}%`;
}

const badge = (text, cls) => h('span', { class: `badge ${String(cls ?? text).replace(/\s+/g, '-')}` }, text);
const clusterTag = (c) => h('span', { class: 'cluster' }, c);

function fill(tableId, rows, columns, emptyText) {
  const body = document.querySelector(`#${tableId} tbody`);
  const trs = rows.map((r) => h('tr', r.attrs ?? {}, r.cells.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', {}, c)))));
  if (trs.length === 0) trs.push(h('tr', {}, h('td', { class: 'empty', colspan: columns }, emptyText)));
  body.replaceChildren(...trs);
}

function renderClusters(m) {
  fill(
    'clusters',
    m.clusters.map((c) => ({
      attrs: { 'data-cluster': c.name },
      cells: [
        h('span', {}, c.name, c.local ? h('span', { class: 'muted' }, ' (this control plane)') : ''),
        c.network || '-',
        badge(c.stale ? 'stale' : c.link),
        h('td', { class: 'num' }, c.services),
        h('td', { class: 'num' }, c.workloads),
        h('td', { class: 'num' }, c.endpoints),
        h('td', { class: 'num' }, c.local || c.proxies ? c.proxies : '-'),
      ],
    })),
    7,
    'no clusters',
  );
}

function renderEdges(m) {
  document.getElementById('window').textContent = `rates over the last ${m.traffic.windowSeconds}s${m.traffic.scrapedAt ? `, proxies read ${ago(m.traffic.scrapedAt)}` : ''}`;
  fill(
    'edges',
    m.edges.map((e) => ({
      attrs: { 'data-edge': `${e.source.cluster}/${e.source.workload}>${e.destination.cluster}/${e.destination.workload}` },
      cells: [
        h('span', {}, `${e.source.workload}.${e.source.namespace}`, clusterTag(e.source.cluster)),
        '→',
        h('span', {}, `${e.destination.workload}.${e.destination.namespace}`, clusterTag(e.destination.cluster)),
        e.destination.service,
        e.protocol,
        h('td', { class: 'num' }, rate(e.rps)),
        h('td', { class: `num${(e.errorRatio ?? 0) > 0.05 ? ' err-high' : ''}` }, e.errorRatio !== undefined ? percent(e.errorRatio) : e.errors ? `${e.errors} total` : '-'),
        h('td', { class: 'num' }, e.requests),
        h('span', { title: e.proxies.join('\n') }, e.reporter),
      ],
    })),
    9,
    'no requests seen yet (from the proxies this control plane serves)',
  );
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs ?? {})) if (v !== undefined) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/**
 * The edges as a graph: one column per cluster, the workloads that send or receive traffic in it,
 * an arrow per edge labelled with its rate (red when more than 5% fail).
 */
export function graphLayout(edges, clusterOrder) {
  const nodeKey = (e) => `${e.cluster}/${e.namespace}/${e.workload}`;
  const columns = new Map(clusterOrder.map((c) => [c, []]));
  const nodes = new Map();
  for (const e of edges) {
    for (const end of [e.source, e.destination]) {
      const k = nodeKey(end);
      if (nodes.has(k)) continue;
      if (!columns.has(end.cluster)) columns.set(end.cluster, []);
      const col = columns.get(end.cluster);
      nodes.set(k, { ...end, key: k, row: col.length });
      col.push(k);
    }
  }
  const order = [...columns.keys()].filter((c) => columns.get(c).length > 0);
  for (const n of nodes.values()) n.col = order.indexOf(n.cluster);
  return { order, columns, nodes, nodeKey };
}

function renderGraph(m) {
  const box = document.getElementById('graph');
  const { order, columns, nodes, nodeKey } = graphLayout(m.edges, m.clusters.map((c) => c.name));
  if (order.length === 0) return box.replaceChildren();
  const COL_W = 360, NODE_W = 200, NODE_H = 34, ROW_H = 70, TOP = 40, LEFT = 30;
  const rows = Math.max(...order.map((c) => columns.get(c).length));
  const width = LEFT * 2 + order.length * COL_W - (COL_W - NODE_W);
  const height = TOP + rows * ROW_H + 10;
  const pos = (n) => ({ x: LEFT + n.col * COL_W, y: TOP + n.row * ROW_H });
  const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'traffic graph' });
  root.append(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#6b7385' }))));
  order.forEach((c, i) => {
    root.append(svg('rect', { x: LEFT + i * COL_W - 12, y: 8, width: NODE_W + 24, height: height - 12, rx: 8, fill: '#f0f4fb', stroke: '#d5deeb' }));
    root.append(svg('text', { x: LEFT + i * COL_W, y: 28, 'font-size': 13, 'font-weight': 600, fill: '#2b6cb0' }, c));
  });
  for (const e of m.edges) {
    const a = nodes.get(nodeKey(e.source)), b = nodes.get(nodeKey(e.destination));
    const pa = pos(a), pb = pos(b);
    const bad = (e.errorRatio ?? 0) > 0.05;
    const color = bad ? '#c53030' : '#4a5568';
    let d, lx, ly;
    if (a.col === b.col) {
      // Same cluster: loop out to the right of the column.
      const x = pa.x + NODE_W, y1 = pa.y + NODE_H / 2, y2 = pb.y + NODE_H / 2, bulge = 60 + Math.abs(y2 - y1) / 3;
      d = `M ${x} ${y1} C ${x + bulge} ${y1}, ${x + bulge} ${y2}, ${x} ${y2 + (a === b ? 8 : 0)}`;
      lx = x + bulge * 0.75 + 4; ly = (y1 + y2) / 2 + 4;
    } else {
      const fwd = b.col > a.col;
      const x1 = fwd ? pa.x + NODE_W : pa.x, x2 = fwd ? pb.x : pb.x + NODE_W;
      const y1 = pa.y + NODE_H / 2, y2 = pb.y + NODE_H / 2, mid = (x1 + x2) / 2;
      d = `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`;
      lx = mid - 24; ly = (y1 + y2) / 2 - 6;
    }
    const g = svg('g', { 'data-edge': `${e.source.cluster}/${e.source.workload}>${e.destination.cluster}/${e.destination.workload}` });
    g.append(svg('path', { d, fill: 'none', stroke: color, 'stroke-width': bad ? 2.5 : 1.8, 'marker-end': 'url(#arrow)' }, svg('title', {}, `${e.source.workload} → ${e.destination.service} (${e.destination.workload})`)));
    g.append(svg('text', { x: lx, y: ly, 'font-size': 12, fill: color }, `${rate(e.rps)} rps${e.errorRatio ? ` · ${percent(e.errorRatio)} err` : ''}`));
    root.append(g);
  }
  for (const n of nodes.values()) {
    const p = pos(n);
    root.append(
      svg('g', { 'data-node': n.key },
        svg('rect', { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 6, fill: '#ffffff', stroke: n.workload === 'unknown' ? '#b7791f' : '#2b6cb0' }),
        svg('text', { x: p.x + 10, y: p.y + 21, 'font-size': 13, fill: '#1d2330' }, `${n.workload}.${n.namespace}`),
      ),
    );
  }
  box.replaceChildren(root);
}

function renderPeers(m) {
  const p = m.peering;
  fill(
    'peers',
    p.remoteClusters.map((r) => ({
      attrs: { 'data-peer': r.name },
      cells: [r.name, r.address, r.network || '-', badge(r.state), ago(r.lastSync), h('td', { class: 'num' }, r.services), h('td', { class: 'num' }, r.endpoints), r.lastError ?? ''],
    })),
    8,
    'no remote clusters configured',
  );
  const parts = [];
  parts.push(p.subscribers.length ? `Subscribed to this cluster's export: ${p.subscribers.map((s) => `${s.cluster} (${s.state})`).join(', ')}.` : 'No peer subscribes to this cluster.');
  if (p.central) parts.push(` Central control plane ${p.central.centralCluster ?? '?'} at ${p.central.address}: ${p.central.connected ? 'connected' : `down${p.central.lastError ? ` (${p.central.lastError})` : ''}`}.`);
  for (const r of p.remoteControlPlanes ?? []) parts.push(` Remote control plane ${r.cluster}: ${r.state}, ${r.services} services.`);
  document.getElementById('subscribers').textContent = parts.join('');
}

function renderProxies(m) {
  const nacks = [];
  fill(
    'proxies',
    m.proxies.map((x) => {
      const types = Object.entries(x.types).map(([t, v]) => {
        if (v.nack) nacks.push(`${x.id} ${t} v${v.nack.version} (${ago(v.nack.at)}): ${v.nack.message}`);
        const b = badge(`${t} ${v.state}`, v.state);
        b.title = `sent ${v.sent ?? '-'}, ACKed ${v.acked ?? '-'}, latest ${v.latest ?? '-'}`;
        return b;
      });
      const st = x.stats;
      return {
        attrs: { 'data-proxy': x.id },
        cells: [x.id, x.cluster, x.protocol, h('span', {}, types), h('span', { title: st.error ?? '' }, badge(st.state), st.error ? ` ${st.error}` : '')],
      };
    }),
    5,
    'no proxies connected',
  );
  document.getElementById('nacks').replaceChildren(...nacks.map((n) => h('li', {}, n)));
}

function renderServices(m) {
  fill(
    'services',
    m.services.map((s) => ({
      attrs: { 'data-service': s.hostname },
      cells: [s.hostname, s.ports.join(', '), h('span', {}, s.clusters.map(clusterTag)), s.workloads.map((w) => `${w.name}@${w.cluster} (${w.healthy}/${w.endpoints})`).join(', ')],
    })),
    4,
    'no services',
  );
}

function renderWorkloads(m) {
  fill(
    'workloads',
    m.workloads.map((w) => ({
      attrs: { 'data-workload': `${w.cluster}/${w.namespace}/${w.name}` },
      cells: [w.cluster, w.namespace, w.name, w.address || '-', w.app || '-', w.version || '-', badge(w.health === 'HEALTHY' ? 'healthy' : w.health.toLowerCase(), w.health === 'HEALTHY' ? 'ok' : 'error'), w.services.join(', ')],
    })),
    8,
    'no workloads',
  );
}

export function render(m) {
  document.getElementById('cluster').textContent = `· control plane of ${m.cluster}`;
  renderClusters(m);
  renderEdges(m);
  renderGraph(m);
  renderPeers(m);
  renderProxies(m);
  renderServices(m);
  renderWorkloads(m);
  const cut = m.truncated ? ` (lists cut: ${Object.entries(m.truncated).map(([k, n]) => `${n} more ${k}`).join(', ')})` : '';
  const status = document.getElementById('status');
  status.className = '';
  status.textContent = `updated ${new Date(m.generatedAt).toLocaleTimeString()}${cut}`;
}

async function poll() {
  const status = document.getElementById('status');
  try {
    const r = await fetch('/debug/meshz?pretty=false', { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    render(await r.json());
  } catch (e) {
    status.className = 'error';
    status.textContent = `cannot read /debug/meshz: ${e instanceof Error ? e.message : String(e)} (retrying)`;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

if (typeof document !== 'undefined') poll();
