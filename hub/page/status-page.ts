import { escapeHtml as h } from '../../shared/html.js';
import { SERVICE_OK_STATES, type ServiceHealth, type VesselStatusReport } from '../../shared/protocol/bodies.js';
import type { BackupAshoreSummary, EventRecord, LogRecord, TelemetryCounters, Vessel } from '../store/hub-store.js';
import {
  FLEET_STATES,
  type FleetCounts,
  type FleetRow,
  type FleetState,
  type VesselRolloutRow,
} from '../store/page-records.js';
import type { RolloutMember, RolloutRecord } from '../store/rollout-records.js';
import { readReport } from './facts.js';
import type { FleetPageQuery } from './page-query.js';
import { backupText, type BackupCell } from '../backup-status.js';
import { OFFLINE_AFTER_MS, STALE_AFTER_MS } from '../fleet.js';
import { formatBytes, formatSeconds } from '../../shared/progress.js';

/**
 * Server-rendered pages for people: readable with no script (a few lines of it refresh the fleet), no
 * build step. Every fact is shown with how old it is; what the hub has not heard lately is never green.
 */

const STYLE = `
:root{--ok:#176d2c;--warn:#8a5a00;--bad:#b3261e;--mute:#5b6673;--line:#dde3ea}
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#17212b;background:#f4f6f8}
header{background:#12324a;color:#fff;padding:8px 20px;display:flex;gap:18px;align-items:center}
header h1{font-size:17px;margin:0}header a{color:#fff}header nav{display:flex;gap:14px;flex:1}
header form{margin:0;background:none;border:0;padding:0}main{padding:14px 20px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#e9eef3;font-weight:600;white-space:nowrap}th a{color:inherit}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:var(--ok)}.warn{color:var(--warn)}.bad{color:var(--bad);font-weight:600}.mute{color:var(--mute)}
.counts{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 10px;padding:0;list-style:none}
.counts a{display:block;background:#fff;border:1px solid var(--line);padding:4px 10px;color:inherit;
text-decoration:none}
.counts a[aria-current]{border-color:#12324a;box-shadow:inset 0 -3px #12324a}
form.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;margin-bottom:10px}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:var(--mute)}
input,select,button{font:inherit;padding:4px 6px}button{cursor:pointer}
.pager{display:flex;gap:12px;align-items:center;margin:10px 0}
section{margin:0 0 18px}h2{font-size:15px;margin:14px 0 6px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;background:#fff;border:1px solid var(--line);
padding:10px;margin:0}
dt{color:var(--mute)}dd{margin:0}
.login{background:#fff;padding:20px;max-width:420px;border:1px solid var(--line)}
.login input{width:100%;box-sizing:border-box;margin:6px 0 12px}
.error{background:#fdecea;border:1px solid #f5c2c0;padding:8px 12px;margin-bottom:10px}
:focus-visible{outline:3px solid #1a73e8;outline-offset:1px}`;

export interface Chrome {
  /** The signed-in token's name and the session's CSRF value (absent on the sign-in page). */
  user?: { name: string; role: string; csrf: string };
  /** The nonce of this response's inline script. */
  nonce?: string;
}

/** A table's head: one column per label (escaped); a label starting `n:` is a numeric column. */
function thead(...labels: string[]): string {
  const th = (l: string) =>
    l.startsWith('n:') ? `<th scope="col" class="n">${h(l.slice(2))}</th>` : `<th scope="col">${h(l)}</th>`;
  return `<thead><tr>${labels.map(th).join('')}</tr></thead>`;
}

/** A table row: its header cell, then data cells (HTML, already escaped); [class, html] gives a cell a class. */
function tr(head: string, ...cells: (string | [string, string])[]): string {
  const td = (c: string | [string, string]) =>
    typeof c === 'string' ? `<td>${c}</td>` : `<td class="${c[0]}">${c[1]}</td>`;
  return `<tr><th scope="row">${head}</th>${cells.map(td).join('')}</tr>`;
}

const AUTOREFRESH =
  '<label style="flex-direction:row;gap:4px;align-items:center"><input type="checkbox" id="autorefresh"> ' +
  'refresh every 30 s</label>';
const FLEET_LEGEND =
  'Contact: online under 5 min, stale under 15 min, offline after. ' +
  "Release, services and link are the vessel's last report, whose age is in the last column.";
const MUTE_DASH = '<span class="mute">-</span>';

function layout(title: string, body: string, chrome: Chrome = {}): string {
  const nav = chrome.user
    ? `<nav aria-label="Main"><a href="/">Fleet</a><a href="/rollouts">Rollouts</a></nav>
<span>${h(chrome.user.name)} (${h(chrome.user.role)})</span>
<form method="post" action="/logout">${csrfField(chrome.user.csrf)}<button type="submit">Sign out</button></form>`
    : '<nav></nav>';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>${h(title)} · Tender</title>
<style>${STYLE}</style></head><body><header><h1>Tender</h1>${nav}</header>
<main id="main"><h1 style="font-size:18px;margin:0 0 10px">${h(title)}</h1>${body}</main></body></html>`;
}

export const csrfField = (csrf: string) => `<input type="hidden" name="csrf" value="${h(csrf)}">`;

export function ago(ms: number | null | undefined, now: number): string {
  if (ms === null || ms === undefined) return 'never';
  const s = Math.round((now - ms) / 1000);
  if (s < 0) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

const time = (ms: number | null | undefined, now: number) =>
  ms === null || ms === undefined
    ? '<span class="mute">never</span>'
    : `<time datetime="${new Date(ms).toISOString()}" title="${new Date(ms).toISOString()}">${h(ago(ms, now))}</time>`;

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

type Contact = 'online' | 'stale' | 'offline' | 'never' | 'revoked';
function contactOf(v: { revokedAt: number | null; lastContact: number | null }, now: number): Contact {
  if (v.revokedAt) return 'revoked';
  if (v.lastContact === null) return 'never';
  const age = now - v.lastContact;
  return age < STALE_AFTER_MS ? 'online' : age < OFFLINE_AFTER_MS ? 'stale' : 'offline';
}
const CONTACT_CLASS: Record<Contact, string> = {
  online: 'ok',
  stale: 'warn',
  offline: 'bad',
  never: 'mute',
  revoked: 'mute',
};

function contactCell(
  v: { revokedAt: number | null; lastContact: number | null; enrolledAt: number | null },
  now: number,
): string {
  if (!v.revokedAt && v.enrolledAt === null) return '<span class="warn">awaiting enrolment</span>';
  const c = contactOf(v, now);
  const label = c === 'online' ? '' : c === 'never' ? '' : `${c} · `;
  return `<span class="${CONTACT_CLASS[c]}">${h(label)}${time(v.lastContact, now)}</span>`;
}

const okService = (s: ServiceHealth) => SERVICE_OK_STATES.includes(s.state);
function serviceLabel(s: ServiceHealth): string {
  if (s.state === 'exited') return `${s.name} exited (code ${s.exitCode ?? '?'})`;
  return `${s.name} ${s.state}`;
}

/**
 * Services as last reported: green only when every one runs AND the vessel is in contact; otherwise the
 * last known state, marked as such.
 */
function servicesCell(r: VesselStatusReport | null, contact: Contact): string {
  if (!r) return '<span class="mute">no report</span>';
  if (r.services.length === 0) return '<span class="mute">none live</span>';
  const bad = r.services.filter((s) => !okService(s));
  const fresh = contact === 'online';
  if (bad.length === 0)
    return fresh
      ? `<span class="ok">${r.services.length} running</span>`
      : `<span class="mute">${r.services.length} running when last heard</span>`;
  const lastKnown = fresh ? '' : ' <span class="mute">(last known)</span>';
  return `<span class="bad">${h(bad.map(serviceLabel).join(', '))}</span>${lastKnown}`;
}

/** ", 12.3 kB/s, about 4 min 10 s left" as the vessel measured it when it reported. */
function rateText(p: { bytesPerSecond?: number; etaSeconds?: number }): string {
  if (!p.bytesPerSecond) return '';
  const left = p.etaSeconds !== undefined ? `, about ${formatSeconds(p.etaSeconds)} left` : '';
  return `, ${formatBytes(p.bytesPerSecond)}/s${left}`;
}

function pendingText(p: NonNullable<NonNullable<VesselStatusReport['apps']>[number]['pending']>): string {
  switch (p.state) {
    case 'held':
      return `${p.version} held by crew`;
    case 'downloading':
      return p.progress && p.progress.total
        ? `${p.version} downloading ${Math.floor((100 * p.progress.done) / p.progress.total)}%${rateText(p.progress)}`
        : `${p.version} downloading`;
    case 'waiting-for-window':
      return `${p.version} waiting for window${p.until ? ` until ${p.until.slice(0, 16).replace('T', ' ')}` : ''}`;
    case 'refused':
      return `${p.version} refused${p.reason ? `: ${p.reason}` : ''}`;
    case 'failed':
      return `${p.version} failed${p.reason ? `: ${p.reason}` : ''}`;
    default:
      return `${p.version} queued`;
  }
}
const pendingClass = (state: string) =>
  state === 'failed' || state === 'refused' ? 'bad' : state === 'held' || state === 'waiting-for-window' ? 'warn' : '';

/** Per app: live (as last reported), and what shore wants when it differs, with why it waits. */
function releaseCells(
  row: { currentRelease: string | null; desired: { app: string; version: string }[] },
  r: VesselStatusReport | null,
): { live: string; desired: string } {
  const apps = r?.apps;
  const live = apps?.length
    ? apps.map((a) => `${h(a.app)} ${a.live ? h(a.live) : '<span class="mute">none</span>'}`).join('<br>')
    : row.currentRelease
      ? h(row.currentRelease)
      : '<span class="mute">none</span>';
  const parts: string[] = [];
  for (const d of row.desired) {
    const known = apps?.find((a) => a.app === d.app);
    const liveVersion = known ? known.live : apps ? null : row.currentRelease;
    if (liveVersion === d.version) continue;
    if (known?.pending && known.pending.version === d.version)
      parts.push(
        `<span class="${pendingClass(known.pending.state)}">${h(d.app)} → ${h(pendingText(known.pending))}</span>`,
      );
    else parts.push(`${h(d.app)} → ${h(d.version)} <span class="mute">(not yet seen by the vessel)</span>`);
  }
  for (const a of apps ?? [])
    if (a.pending && !row.desired.some((d) => d.app === a.app))
      parts.push(`<span class="${pendingClass(a.pending.state)}">${h(a.app)} → ${h(pendingText(a.pending))}</span>`);
  return { live, desired: parts.join('<br>') || '<span class="mute">up to date</span>' };
}

function linkCell(r: VesselStatusReport | null): string {
  const l = r?.link;
  if (!l) return '<span class="mute">-</span>';
  const rtt = l.rttMs === null ? '' : `${l.rttMs} ms · `;
  const failed = l.failures24h ? ` <span class="warn">${l.failures24h} failed</span>` : '';
  return `${h(rtt)}↑${h(bytes(l.bytesUp24h))} ↓${h(bytes(l.bytesDown24h))}${failed}`;
}

/** Each policy's last good backup and its age (hub/backup-status.ts); an alarm stands out. */
function backupCell(cells: BackupCell[] | undefined): string {
  if (!cells?.length) return '<span class="mute">-</span>';
  return cells
    .map((c) => `<span data-policy="${h(c.policy)}"${c.alarm ? ' class="warn"' : ''}>${h(backupText([c]))}</span>`)
    .join('<br>');
}

function rolloutCell(r: FleetRow['rollout']): string {
  if (!r) return '<span class="mute">-</span>';
  const cls = r.outcome === 'failed' ? 'bad' : r.outcome === 'installed-healthy' ? 'ok' : '';
  return `<a href="/rollouts/${r.id}">#${r.id}</a> wave ${r.wave + 1} <span class="${cls}">${h(r.outcome)}</span>${
    r.failure ? ` <span class="bad">(${h(r.failure)})</span>` : ''
  }${r.state !== 'active' ? ` <span class="mute">[${h(r.state)}]</span>` : ''}`;
}

const STATE_LABELS: Record<FleetState, string> = {
  online: 'Online',
  stale: 'Stale',
  offline: 'Offline',
  never: 'Never heard from',
  revoked: 'Revoked',
  failing: 'Failing',
  updating: 'Updating',
  held: 'Held by crew',
  window: 'Waiting for window',
};

function fleetLink(q: FleetPageQuery, over: Partial<FleetPageQuery>): string {
  const all = { ...q, ...over };
  const p = new URLSearchParams();
  if (all.q) p.set('q', all.q);
  if (all.group) p.set('group', all.group);
  if (all.state) p.set('state', all.state);
  if (all.release) p.set('release', all.release);
  if (all.rollout !== undefined) p.set('rollout', String(all.rollout));
  if (all.sort !== 'name') p.set('sort', all.sort);
  if (all.dir !== 'asc') p.set('dir', all.dir);
  if (all.page !== 1) p.set('page', String(all.page));
  if (all.per !== 50) p.set('per', String(all.per));
  const s = p.toString();
  return s ? `/?${s}` : '/';
}

export function renderFleetPage(
  page: { rows: FleetRow[]; total: number },
  counts: FleetCounts,
  q: FleetPageQuery,
  now: number,
  chrome: Chrome,
  serverMs?: number,
  backups: Map<string, BackupCell[]> = new Map(),
): string {
  const countLinks = [
    `<li><a href="${h(fleetLink(q, { state: undefined, page: 1 }))}"${q.state ? '' : ' aria-current="true"'}>` +
      `<b>${counts.total}</b> vessels</a></li>`,
    ...FLEET_STATES.map(
      (s) =>
        `<li><a href="${h(fleetLink(q, { state: s, page: 1 }))}"${q.state === s ? ' aria-current="true"' : ''}><b${
          counts[s] && (s === 'failing' || s === 'offline') ? ' class="bad"' : ''
        }>${counts[s]}</b> ${h(STATE_LABELS[s].toLowerCase())}</a></li>`,
    ),
  ].join('');
  const sortHead = (key: FleetPageQuery['sort'], label: string) => {
    const active = q.sort === key;
    const dir = active && q.dir === 'asc' ? 'desc' : 'asc';
    const aria = active ? ` aria-sort="${q.dir === 'asc' ? 'ascending' : 'descending'}"` : '';
    return `<th scope="col"${aria}><a href="${h(fleetLink(q, { sort: key, dir, page: 1 }))}">${h(label)}${
      active ? (q.dir === 'asc' ? ' ▲' : ' ▼') : ''
    }</a></th>`;
  };
  const rows = page.rows
    .map((row) => {
      const r = readReport(row.status);
      const contact = contactOf(row, now);
      const rel = releaseCells(row, r);
      const t = row.telemetry;
      const dropped = t?.dropped ? ` <span class="warn">(${t.dropped.toLocaleString('en')} dropped)</span>` : '';
      return `<tr data-vessel="${h(row.name)}" data-contact="${contact}">
<th scope="row"><a href="/vessels/${encodeURIComponent(row.name)}">${h(row.name)}</a></th>
<td>${h(row.groups.join(', ')) || '<span class="mute">-</span>'}</td>
<td>${contactCell(row, now)}</td>
<td>${rel.live}</td><td>${rel.desired}</td><td>${rolloutCell(row.rollout)}</td>
<td>${servicesCell(r, contact)}</td>
<td>${linkCell(r)}</td>
<td class="n">${t ? `${t.backlog.toLocaleString('en')}${dropped}` : MUTE_DASH}</td>
<td>${row.lastEvent ? `${h(row.lastEvent.type)} ${time(row.lastEvent.at, now)}` : '<span class="mute">-</span>'}</td>
<td>${row.statusReceivedAt ? time(row.statusReceivedAt, now) : '<span class="mute">none</span>'}</td>
<td>${backupCell(backups.get(row.name))}</td></tr>`;
    })
    .join('\n');
  const pages = Math.max(1, Math.ceil(page.total / q.per));
  const first = page.total === 0 ? 0 : (q.page - 1) * q.per + 1;
  const last = Math.min(page.total, q.page * q.per);
  const [MUTE_PREVIOUS, MUTE_NEXT] = ['<span class="mute">← Previous</span>', '<span class="mute">Next →</span>'];
  const pager = `<nav class="pager" aria-label="Pages">
${q.page > 1 ? `<a href="${h(fleetLink(q, { page: q.page - 1 }))}" rel="prev">← Previous</a>` : MUTE_PREVIOUS}
<span>Vessels ${first}–${last} of ${page.total} · page ${q.page} of ${pages}</span>
${q.page < pages ? `<a href="${h(fleetLink(q, { page: q.page + 1 }))}" rel="next">Next →</a>` : MUTE_NEXT}
</nav>`;
  const stateOptions = ['', ...FLEET_STATES]
    .map(
      (s) =>
        `<option value="${s}"${q.state === s || (!q.state && !s) ? ' selected' : ''}>` +
        `${s ? h(STATE_LABELS[s as FleetState]) : 'any'}</option>`,
    )
    .join('');
  const filters = `<form class="filters" method="get" action="/" role="search">
<label>Search name<input type="search" name="q" value="${h(q.q ?? '')}" maxlength="200"></label>
<label>Group<input name="group" value="${h(q.group ?? '')}" maxlength="64"></label>
<label>State<select name="state">${stateOptions}</select></label>
<label>Release<input name="release" value="${h(q.release ?? '')}" maxlength="130"
placeholder="1.2.0 or app@1.2.0"></label>
<label>Rollout<input name="rollout" value="${q.rollout ?? ''}" inputmode="numeric" size="6"></label>
<input type="hidden" name="sort" value="${h(q.sort)}"><input type="hidden" name="dir" value="${h(q.dir)}">
<button type="submit">Filter</button> <a href="/">Clear</a>
${AUTOREFRESH}
</form>`;
  const script = chrome.nonce
    ? `<script nonce="${h(chrome.nonce)}">(()=>{const b=document.getElementById('autorefresh');
b.checked=localStorage.getItem('tender.refresh')==='1';
b.onchange=()=>localStorage.setItem('tender.refresh',b.checked?'1':'0');
setInterval(()=>{if(b.checked&&!document.hidden)location.reload()},30000)})();</script>`
    : '';
  const noRows = counts.total ? 'No vessel matches.' : 'No vessels yet: tender vessel add NAME';
  return layout(
    'Fleet',
    `<ul class="counts" aria-label="Vessels per state">${countLinks}</ul>${filters}
<p class="mute" style="margin:0 0 6px">${FLEET_LEGEND}${
      serverMs !== undefined ? ` Page built in ${serverMs.toFixed(0)} ms.` : ''
    }</p>
<table><caption class="mute" style="text-align:left">${page.total} vessels match</caption><thead><tr>
${sortHead('name', 'Vessel')}<th scope="col">Groups</th>${sortHead('contact', 'Last contact')}
${sortHead('release', 'Live release')}
<th scope="col">Desired / pending</th><th scope="col">Rollout</th><th scope="col">Services</th>
<th scope="col">Link (24 h)</th>
${sortHead('backlog', 'Telemetry backlog')}<th scope="col">Last event</th>${sortHead('report', 'Report age')}
<th scope="col">Last good backup</th></tr></thead>
<tbody>${rows || `<tr><td colspan="12" class="mute">${noRows}</td></tr>`}</tbody></table>
${pager}${script}`,
    chrome,
  );
}

export interface VesselPageData {
  vessel: Vessel;
  desired: { app: string; version: string }[];
  telemetry: TelemetryCounters | undefined;
  rollouts: VesselRolloutRow[];
  events: EventRecord[];
  logs: LogRecord[] | null;
  grep: string;
  backups: BackupAshoreSummary[];
}

export function renderVesselPage(d: VesselPageData, now: number, chrome: Chrome): string {
  const v = d.vessel;
  const r = readReport(v.status);
  const contact = contactOf(v, now);
  const received = v.statusReceivedAt ?? null;
  const enrolment = v.revokedAt
    ? `<span class="bad">revoked ${time(v.revokedAt, now)}</span>`
    : v.enrolledAt
      ? `enrolled ${time(v.enrolledAt, now)}`
      : '<span class="warn">awaiting enrolment</span>';
  const lastReport = received
    ? `received ${time(received, now)}${r ? `, sent ${h(r.reportedAt)} (vessel clock)` : ''}`
    : '<span class="mute">none yet</span>';
  const hold = r?.hold
    ? `<span class="warn">holding ${h(r.hold.app ?? 'every app')} (sequence ${r.hold.sequence})</span>`
    : r
      ? 'none'
      : '<span class="mute">unknown</span>';
  const agentDetail = r ? ` · root v${r.rootVersion} · boot ${h(r.bootId.slice(0, 8))}` : '';
  const summary = `<dl>
<dt>Groups</dt><dd>${h(v.groups.join(', ')) || '<span class="mute">none</span>'}</dd>
<dt>Enrolment</dt><dd>${enrolment}</dd>
<dt>Last contact</dt><dd>${contactCell(v, now)} <span class="mute">${h(contact)}</span></dd>
<dt>Last status report</dt><dd>${lastReport}</dd>
<dt>Agent</dt><dd>${h(v.agentVersion ?? '-')}${agentDetail}</dd>
<dt>Crew hold</dt><dd>${hold}</dd>
</dl>`;
  const appNames = [...new Set([...(r?.apps ?? []).map((a) => a.app), ...d.desired.map((x) => x.app)])].sort();
  const apps = appNames.length
    ? `<table>${thead('App', 'Live (vessel)', 'Desired (hub)', 'Pending on the vessel')}<tbody>${appNames
        .map((app) => {
          const a = r?.apps?.find((x) => x.app === app);
          const want = d.desired.find((x) => x.app === app)?.version ?? null;
          const pending = a?.pending
            ? `<span class="${pendingClass(a.pending.state)}">${h(pendingText(a.pending))}</span>`
            : want && a?.live !== want
              ? `<span class="mute">${h(want)} not yet seen by the vessel</span>`
              : '<span class="mute">none</span>';
          return tr(h(app), h(a?.live ?? (r?.apps ? 'none' : (v.currentRelease ?? 'none'))), h(want ?? '-'), pending);
        })
        .join('')}</tbody></table>`
    : `<p class="mute">No app on board or targeted` +
      `${v.currentRelease ? ` (reported release ${h(v.currentRelease)})` : ''}.</p>`;
  const services = r?.services.length
    ? `<table>${thead('App', 'Service', 'Release', 'State', 'n:Restarts', 'Detail')}<tbody>${r.services
        .map(
          (s) =>
            `<tr><td>${h(s.app ?? '-')}</td><th scope="row">${h(s.name)}</th><td>${h(s.release ?? '-')}</td>` +
            `<td class="${okService(s) ? (contact === 'online' ? 'ok' : 'mute') : 'bad'}">` +
            `${h(s.state === 'exited' ? `exited (code ${s.exitCode ?? '?'})` : s.state)}</td>` +
            `<td class="n">${s.restarts ?? '-'}</td><td>${h(s.detail ?? '')}</td></tr>`,
        )
        .join('')}</tbody></table><p class="mute">As reported ${received ? h(ago(received, now)) : ''}.</p>`
    : `<p class="mute">${r ? 'No live service reported.' : 'No status report yet.'}</p>`;
  const l = r?.link;
  const day = l
    ? `↑ ${h(bytes(l.bytesUp24h))}, ↓ ${h(bytes(l.bytesDown24h))}, ` +
      `${l.requests24h} requests, ${l.failures24h} failed`
    : '';
  const link = l
    ? `<dl><dt>State</dt><dd>${h(l.state)}${l.lastOkAt ? `, last ok ${h(l.lastOkAt)}` : ''}</dd>
<dt>Round trip</dt><dd>${l.rttMs === null ? '-' : `${l.rttMs} ms (median of recent)`}</dd>
<dt>Last 24 h</dt><dd>${day}</dd>
${l.lastError ? `<dt>Last error</dt><dd>${h(l.lastError)}</dd>` : ''}</dl>`
    : '<p class="mute">No link report (agent before status report v2, or none yet).</p>';
  const t = d.telemetry;
  const dropped = t ? Object.entries(t.drops).filter(([, x]) => x.records > 0) : [];
  const droppedText = dropped.map(([k, x]) => `${k} ${x.records} (${bytes(x.bytes)})`).join(', ');
  const telemetry = t
    ? `<dl><dt>Backlog on board</dt><dd>${t.backlog.toLocaleString('en')} records</dd>
<dt>Dropped on board</dt><dd>${droppedText ? `<span class="warn">${h(droppedText)}</span>` : 'none'}</dd>
<dt>Received</dt><dd>${t.recordsReceived.toLocaleString('en')} records, ${h(bytes(t.bytesReceived))} over the link</dd>
<dt>Last batch</dt><dd>${time(t.lastBatchAt, now)}</dd></dl>`
    : '<p class="mute">No telemetry received.</p>';
  const rollouts = d.rollouts.length
    ? `<table>${thead('Rollout', 'Release', 'State', 'Wave', 'Outcome', 'Reason', 'Reported')}<tbody>${d.rollouts
        .map((x) =>
          tr(
            `<a href="/rollouts/${x.rolloutId}">#${x.rolloutId}</a>`,
            h(`${x.app}@${x.version}`),
            h(x.rolloutState),
            String(x.wave + 1),
            [
              outcomeClass(x.outcome),
              `${h(x.outcome)}${x.failure ? ` (${h(x.failure)})` : ''}${superseded(x.supersededBy)}`,
            ],
            h(x.reason ?? ''),
            time(x.reportedAt, now),
          ),
        )
        .join('')}</tbody></table>`
    : '<p class="mute">In no rollout.</p>';
  const events = d.events.length
    ? `<table>${thead('Event', 'Received', 'Detail')}<tbody>${d.events
        .map((e) => tr(h(e.type), time(e.receivedAt, now), `<code>${h(JSON.stringify(e.data).slice(0, 300))}</code>`))
        .join('')}</tbody></table>`
    : '<p class="mute">No events received.</p>';
  const logSearch =
    `<label>Search logs (all words)<input type="search" name="grep" value="${h(d.grep)}" maxlength="200"></label>` +
    '<button type="submit">Search</button></form>';
  const logs = `<form class="filters" method="get" action="/vessels/${encodeURIComponent(v.name)}#logs" role="search">
${logSearch}${
    d.logs === null
      ? ''
      : d.logs.length
        ? `<table>${thead('At (vessel)', 'Service', 'Level', 'Line')}<tbody>${d.logs
            .map(
              (x) =>
                `<tr><td>${h(new Date(x.at).toISOString().replace('T', ' ').slice(0, 19))}</td>` +
                `<td>${h(x.service)}</td><td>${h(x.level)}</td><td><code>${h(x.line.slice(0, 500))}</code></td></tr>`,
            )
            .join('')}</tbody></table>`
        : '<p class="mute">No matching log line.</p>'
  }`;
  const backups = d.backups.length
    ? `<table>${thead('Backup', 'Policy', 'Method', 'Finished', 'n:Size')}<tbody>${d.backups
        .map((b) => tr(h(b.id), h(b.policy), h(b.method), time(b.finishedAt, now), ['n', h(bytes(b.bytes))]))
        .join('')}</tbody></table>`
    : '<p class="mute">No backups ashore.</p>';
  return layout(
    v.name,
    `<p><a href="/">← Fleet</a></p>
<section aria-labelledby="s-sum"><h2 id="s-sum">Summary</h2>${summary}</section>
<section aria-labelledby="s-apps"><h2 id="s-apps">Releases</h2>${apps}</section>
<section aria-labelledby="s-svc"><h2 id="s-svc">Services</h2>${services}</section>
<section aria-labelledby="s-link"><h2 id="s-link">Link</h2>${link}</section>
<section aria-labelledby="s-tel"><h2 id="s-tel">Telemetry</h2>${telemetry}</section>
<section aria-labelledby="s-ro"><h2 id="s-ro">Rollouts</h2>${rollouts}</section>
<section aria-labelledby="s-ev"><h2 id="s-ev">Recent events</h2>${events}</section>
<section aria-labelledby="logs"><h2 id="logs">Logs</h2>${logs}</section>
<section aria-labelledby="s-bk"><h2 id="s-bk">Backups ashore</h2>${backups}</section>
${r ? `<details><summary>The last report as sent</summary><pre>${h(JSON.stringify(r, null, 2))}</pre></details>` : ''}`,
    chrome,
  );
}

const outcomeClass = (outcome: string) => (outcome === 'failed' ? 'bad' : outcome === 'installed-healthy' ? 'ok' : '');
const superseded = (by: number | null | undefined) => (by ? ` <span class="mute">superseded by #${by}</span>` : '');

export function renderRolloutsPage(list: RolloutRecord[], now: number, chrome: Chrome): string {
  const rows = list
    .map((r) =>
      tr(
        `<a href="/rollouts/${r.id}">#${r.id}</a>`,
        h(`${r.app}@${r.version}`),
        h(r.kind),
        h(r.target),
        [r.state === 'halted' || r.state === 'aborted' ? 'bad' : r.state === 'completed' ? 'ok' : '', h(r.state)],
        `${r.currentWave + 1} of ${r.rules.waves.length}`,
        ['n', String(r.vessels)],
        h(r.reason ?? ''),
        `${time(r.createdAt, now)} by ${h(r.createdBy)}`,
      ),
    )
    .join('');
  return layout(
    'Rollouts',
    `<table>${thead('Rollout', 'Release', 'Kind', 'Target', 'State', 'Wave', 'n:Vessels', 'Reason', 'Started')}<tbody>${
      rows || '<tr><td colspan="9" class="mute">No rollouts yet.</td></tr>'
    }</tbody></table>`,
    chrome,
  );
}

/** Members shown per page of a rollout: a rollout to the whole fleet has as many as the fleet. */
export const ROLLOUT_PAGE_SIZE = 100;
/** What a member counts as on the rollout page: its outcome, or that its wave has not started, or superseded. */
export const memberKey = (m: RolloutMember): string =>
  m.supersededBy ? 'superseded' : m.startedAt === null ? 'not started' : m.outcome;

export interface RolloutView {
  page: number;
  /** Only members whose key (memberKey) is this. */
  outcome?: string;
}

function rolloutLink(id: number, v: RolloutView): string {
  const q = new URLSearchParams();
  if (v.outcome) q.set('outcome', v.outcome);
  if (v.page > 1) q.set('page', String(v.page));
  const qs = q.toString();
  return `/rollouts/${id}${qs ? `?${qs}` : ''}`;
}

export function renderRolloutPage(
  r: RolloutRecord,
  members: RolloutMember[],
  now: number,
  chrome: Chrome,
  canOperate: boolean,
  message?: string,
  view: RolloutView = { page: 1 },
): string {
  const waves = new Map<number, Map<string, number>>();
  const totals = new Map<string, number>();
  for (const m of members) {
    const w = waves.get(m.wave) ?? new Map<string, number>();
    const key = memberKey(m);
    w.set(key, (w.get(key) ?? 0) + 1);
    waves.set(m.wave, w);
    totals.set(key, (totals.get(key) ?? 0) + 1);
  }
  const waveRows = [...waves.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([w, c]) =>
      tr(
        `Wave ${w + 1}${w === 0 && r.canary.length ? ' (canary)' : ''}${w === r.currentWave ? ' · current' : ''}`,
        h([...c.entries()].map(([k, n]) => `${n} ${k}`).join(', ')),
      ),
    )
    .join('');
  const button = (verb: string, label: string) =>
    `<form method="post" action="/rollouts/${r.id}/${verb}" style="display:inline">` +
    `${csrfField(chrome.user?.csrf ?? '')}<button type="submit">${label}</button></form>`;
  const actions = canOperate
    ? [
        r.state === 'active' ? button('pause', 'Pause') : '',
        r.state === 'paused' ? button('resume', 'Resume') : '',
        ['active', 'paused', 'halted'].includes(r.state) ? button('abort', 'Abort') : '',
      ].join(' ')
    : '<span class="mute">Pause, resume and abort need the operator role.</span>';
  const shown = view.outcome ? members.filter((m) => memberKey(m) === view.outcome) : members;
  const pages = Math.max(1, Math.ceil(shown.length / ROLLOUT_PAGE_SIZE));
  const page = Math.min(view.page, pages);
  const first = (page - 1) * ROLLOUT_PAGE_SIZE;
  const filters = [
    view.outcome
      ? `<a href="${h(rolloutLink(r.id, { page: 1 }))}">all ${members.length}</a>`
      : `<b>all ${members.length}</b>`,
    ...[...totals.entries()].map(([k, n]) =>
      k === view.outcome
        ? `<b>${n} ${h(k)}</b>`
        : `<a href="${h(rolloutLink(r.id, { page: 1, outcome: k }))}">${n} ${h(k)}</a>`,
    ),
  ].join(' · ');
  const pager =
    pages > 1
      ? `<p class="pager">${
          page > 1 ? `<a href="${h(rolloutLink(r.id, { ...view, page: page - 1 }))}" rel="prev">← Previous</a>` : ''
        } Vessels ${first + 1}–${Math.min(first + ROLLOUT_PAGE_SIZE, shown.length)} of ${shown.length} · ` +
        `page ${page} of ${pages} ${
          page < pages ? `<a href="${h(rolloutLink(r.id, { ...view, page: page + 1 }))}" rel="next">Next →</a>` : ''
        }</p>`
      : '';
  const memberRows = shown
    .slice(first, first + ROLLOUT_PAGE_SIZE)
    .map((m) =>
      tr(
        `<a href="/vessels/${encodeURIComponent(m.vessel)}">${h(m.vessel)}</a>`,
        String(m.wave + 1),
        [
          outcomeClass(m.outcome),
          `${h(m.startedAt === null ? 'not started' : m.outcome)}${m.failure ? ` (${h(m.failure)})` : ''}`,
        ],
        `${h(m.reason ?? '')}${
          m.progress && m.progress.total ? ` ${Math.floor((100 * m.progress.done) / m.progress.total)}%` : ''
        }${m.until ? ` until ${h(m.until)}` : ''}${superseded(m.supersededBy)}`,
        time(m.reportedAt, now),
      ),
    )
    .join('');
  const reason = r.reason ? `: ${h(r.reason)}` : '';
  const stateClass = r.state === 'halted' || r.state === 'aborted' ? 'bad' : '';
  const waveStarted = r.waveStartedAt ? `, started ${time(r.waveStartedAt, now)}` : '';
  return layout(
    `Rollout #${r.id}`,
    `<p><a href="/rollouts">← Rollouts</a></p>${message ? `<p class="error" role="alert">${h(message)}</p>` : ''}
<dl><dt>Release</dt><dd>${h(`${r.app}@${r.version}`)} (${h(r.kind)})</dd><dt>Target</dt><dd>${h(r.target)}</dd>
<dt>State</dt><dd class="${stateClass}" data-state="${h(r.state)}">${h(r.state)}${reason}</dd>
<dt>Waves</dt><dd>${h(r.rules.waves.join('%, '))}% · now wave ${r.currentWave + 1}${waveStarted}</dd>
<dt>Started</dt><dd>${time(r.createdAt, now)} by ${h(r.createdBy)}; last change ${time(r.updatedAt, now)}</dd>
<dt>Actions</dt><dd>${actions}</dd></dl>
<h2>Waves</h2><table><tbody>${waveRows || '<tr><td class="mute">No vessels.</td></tr>'}</tbody></table>
<h2>Vessels</h2><p>${filters}</p>
<table>${thead('Vessel', 'Wave', 'Outcome', 'Detail', 'Reported')}<tbody>${
      memberRows || '<tr><td class="mute" colspan="5">No vessel with that outcome.</td></tr>'
    }</tbody></table>${pager}`,
    chrome,
  );
}

export function renderLoginPage(message?: string): string {
  return layout(
    'Sign in',
    `<form class="login" method="post" action="/login"><p>Paste an ops token (viewer role or above). Tokens are
never accepted in a link.</p>${message ? `<p class="error" role="alert">${h(message)}</p>` : ''}
<label for="token">Token</label><input id="token" name="token" type="password" autocomplete="off" autofocus required>
<button type="submit">Sign in</button></form>`,
  );
}

export function renderErrorPage(title: string, message: string, chrome: Chrome = {}): string {
  return layout(title, `<p class="error" role="alert">${h(message)}</p><p><a href="/">← Fleet</a></p>`, chrome);
}
