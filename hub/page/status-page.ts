import type { Vessel } from '../store/hub-store.js';
import { ACTIVE_WINDOW_MS } from '../fleet.js';
import { escapeHtml } from '../../shared/html.js';

/** Server-rendered fleet pages: no build step, no script needed to read them. */

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b2733;background:#f5f7f9}
header{background:#12324a;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:baseline}
header h1{font-size:18px;margin:0}main{padding:16px 20px}
table{border-collapse:collapse;width:100%;background:#fff}th,td{padding:6px 10px;border-bottom:1px solid #e3e8ee;text-align:left;white-space:nowrap}
th{background:#eef2f5;font-weight:600}.ok{color:#176d2c}.stale{color:#9a6700}.off{color:#a40e26}.muted{color:#6b7785}
.summary{display:flex;gap:24px;margin-bottom:12px}.summary div{background:#fff;padding:8px 14px;border:1px solid #e3e8ee}
form{background:#fff;padding:20px;max-width:420px;border:1px solid #e3e8ee}input{width:100%;padding:6px;margin:6px 0 12px}`;

function layout(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>
<header><h1>Tender</h1><span>${escapeHtml(title)}</span></header><main>${body}</main></body></html>`;
}

export function ago(ms: number | null, now: number): string {
  if (ms === null) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function contactClass(v: Vessel, now: number): string {
  if (v.revokedAt) return 'off';
  if (v.lastContact === null) return 'muted';
  return now - v.lastContact < ACTIVE_WINDOW_MS ? 'ok' : 'stale';
}

function stateOf(v: Vessel): string {
  return v.revokedAt ? 'revoked' : v.enrolledAt ? 'enrolled' : 'awaiting enrolment';
}

export function renderFleetPage(
  vessels: Vessel[],
  now: number,
  backlog: Map<string, { backlog: number; dropped: number }> = new Map(),
): string {
  const active = vessels.filter(
    (v) => !v.revokedAt && v.lastContact !== null && now - v.lastContact < ACTIVE_WINDOW_MS,
  ).length;
  const rows = vessels
    .map(
      (v) => `<tr data-vessel="${escapeHtml(v.name)}">
<td><a href="/vessels/${encodeURIComponent(v.name)}">${escapeHtml(v.name)}</a></td>
<td>${escapeHtml(v.groups.join(', '))}</td>
<td>${escapeHtml(stateOf(v))}</td>
<td>${v.enrolledAt ? escapeHtml(new Date(v.enrolledAt).toISOString().slice(0, 16).replace('T', ' ')) : '<span class="muted">-</span>'}</td>
<td class="${contactClass(v, now)}">${escapeHtml(ago(v.lastContact, now))}</td>
<td>${v.currentRelease ? escapeHtml(v.currentRelease) : '<span class="muted">none</span>'}</td>
<td>${backlogCell(backlog.get(v.name))}</td></tr>`,
    )
    .join('\n');
  return layout(
    'Fleet',
    `<div class="summary"><div><b>${vessels.length}</b> vessels</div><div><b>${active}</b> active (15 min)</div></div>
<table><thead><tr><th>Vessel</th><th>Groups</th><th>State</th><th>Enrolled</th><th>Last contact</th><th>Release</th><th>Telemetry backlog</th></tr></thead>
<tbody>${rows || '<tr><td colspan="7" class="muted">No vessels yet: tender vessel add NAME</td></tr>'}</tbody></table>`,
  );
}

function backlogCell(t: { backlog: number; dropped: number } | undefined): string {
  if (!t) return '<span class="muted">-</span>';
  return `${t.backlog.toLocaleString('en')} queued${t.dropped ? ` <span class="stale">(${t.dropped.toLocaleString('en')} dropped)</span>` : ''}`;
}

export function renderVesselPage(v: Vessel, now: number): string {
  const status = v.status
    ? `<pre>${escapeHtml(JSON.stringify(v.status, null, 2))}</pre>`
    : '<p class="muted">No status report yet.</p>';
  return layout(
    v.name,
    `<p><a href="/">&larr; Fleet</a></p><table>
<tr><th>Groups</th><td>${escapeHtml(v.groups.join(', '))}</td></tr>
<tr><th>State</th><td>${escapeHtml(stateOf(v))}</td></tr>
<tr><th>Last contact</th><td class="${contactClass(v, now)}">${escapeHtml(ago(v.lastContact, now))}</td></tr>
<tr><th>Release</th><td>${escapeHtml(v.currentRelease ?? 'none')}</td></tr>
<tr><th>Agent</th><td>${escapeHtml(v.agentVersion ?? '-')}</td></tr></table><h3>Last report</h3>${status}`,
  );
}

export function renderLoginPage(message?: string): string {
  return layout(
    'Sign in',
    `<form method="post" action="/login"><p>Paste an ops token (viewer role or above).</p>
${message ? `<p class="off">${escapeHtml(message)}</p>` : ''}<label>Token<input name="token" type="password" autocomplete="off" autofocus></label>
<button type="submit">Sign in</button></form>`,
  );
}
