import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { consoleCertificate, consoleFingerprint } from './console-tls.js';
import { createHmac, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { checkPassword } from './password.js';
import { errorMessage, TenderError } from '../../shared/errors.js';
import { escapeHtml } from '../../shared/html.js';
import type { AgentConfig } from '../config.js';
import type { Controller } from '../release/controller.js';
import { buildStatus, formatDownload, type StatusView } from '../status.js';
import type { StateStore } from '../state-store.js';
import { importAndApply } from './bundle-command.js';

/**
 * The crew's console on the vessel LAN: status, a rollback button and a bundle upload form, behind the password set at
 * enrolment (HTTP basic auth). It calls the same controller as `tender rollback`, so both paths behave
 * alike, and it works with no link at all.
 */
export class ConsoleError extends TenderError {}

// A rollback request carries no body worth more than this.
const MAX_BODY_BYTES = 4096;

type ConsoleRelease = ReturnType<Controller['releases']['list']>[number] & { hostAccess?: string[] };

/** What a release may touch on the host, as the crew reads it before rolling back to it. */
function hostAccessCell(lines: string[] | undefined): string {
  if (lines === undefined) return 'unknown (manifest no longer verifies)';
  return lines.length ? lines.map((l) => `<b>${escapeHtml(l)}</b>`).join('<br>') : 'none';
}

const PAGE_END = '<p><a href="/">Back</a></p></body></html>';
const RELEASES_HEAD = '<tr><th>State</th><th>Version</th><th>Last live</th><th>Host access</th><th></th></tr>';
const BUNDLE_HELP =
  '<p>A bundle from <code>tender bundle export</code>: verified exactly as a download from shore, ' +
  'then applied by the same rules (window, hold).</p>';
const STYLE =
  'body{font:16px system-ui,sans-serif;margin:20px;max-width:900px}' +
  'td,th{padding:6px 10px;text-align:left;border-bottom:1px solid #ddd}button{font-size:16px;padding:8px 14px}' +
  '.big{font-size:20px;background:#a40e26;color:#fff;border:0}';

/** A one-button form posting to the console with the page's CSRF value (and any hidden fields, escaped). */
function postButton(action: string, csrf: string, label: string, opts: { big?: boolean; release?: string } = {}) {
  const release = opts.release ? `<input type="hidden" name="release" value="${escapeHtml(opts.release)}">` : '';
  return (
    `<form method="post" action="${action}"><input type="hidden" name="csrf" value="${csrf}">${release}` +
    `<button${opts.big ? ' class="big"' : ''}>${label}</button></form>`
  );
}

function releaseRow(r: ConsoleRelease, csrf: string, download: StatusView['download']): string {
  const lastLive = r.lastLiveAt
    ? escapeHtml(new Date(r.lastLiveAt).toISOString().slice(0, 16).replace('T', ' '))
    : 'never';
  const rollback =
    r.state !== 'live' && r.lastLiveAt
      ? postButton('/rollback', csrf, `Roll back to ${escapeHtml(r.version)}`, { release: `${r.app}@${r.version}` })
      : '';
  return (
    `<tr><td>${stateCell(r, download)}</td><td>${escapeHtml(r.version)}</td>` +
    `<td>${lastLive}</td><td>${hostAccessCell(r.hostAccess)}</td>\n<td>${rollback}</td></tr>`
  );
}

/** A release whose images are still coming down says so, with its percent, not "staged". */
function stateCell(r: ConsoleRelease, download: StatusView['download']): string {
  if (r.state === 'live') return '<b>live</b>';
  if (r.state === 'staged' && download?.release === `${r.app}@${r.version}`)
    return download.staleSince ? `downloading ${download.percent} % (not moving)` : `downloading ${download.percent} %`;
  return escapeHtml(r.state);
}

// The bundle form posts the file as the raw body, so a bundle of any size streams into the import.
const UPLOAD_SCRIPT = (csrf: string) => `<script>
document.getElementById('bundle').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = e.target.elements.bundle.files[0], out = document.getElementById('bundle-result');
  if (!f) return;
  out.textContent = 'Importing ' + f.name + ' (' + Math.round(f.size / 1e5) / 10 + ' MB)...';
  const r = await fetch('/upload', {
    method: 'POST', headers: { 'content-type': 'application/octet-stream', 'x-csrf': ${JSON.stringify(csrf)} }, body: f,
  });
  const j = await r.json().catch(() => ({ message: 'HTTP ' + r.status }));
  const done = r.ok && j.app + '@' + j.version + ': ' + j.outcome + (j.reason ? ' (' + j.reason + ')' : '');
  out.textContent = r.ok ? done : j.message;
  if (r.ok) setTimeout(() => location.reload(), 1500);
});
</script>`;

function page(s: StatusView, releases: ConsoleRelease[], csrf: string, message?: string): string {
  const rows = releases.map((r) => releaseRow(r, csrf, s.download)).join('');
  const rel = s.release;
  const live =
    `<p>Live release: <b>${escapeHtml(rel.current ?? 'none')}</b>${rel.held ? ' (held by the crew)' : ''}. ` +
    `Previous: ${escapeHtml(rel.previous ?? 'none')}. Link to shore: ${escapeHtml(s.link.state)}.</p>` +
    (s.download ? `<p>Downloading ${escapeHtml(formatDownload(s.download))}.</p>` : '');
  const rollback = rel.previous
    ? postButton('/rollback', csrf, `Roll back to the previous release (${escapeHtml(rel.previous)})`, { big: true })
    : '<p>No previous release kept on board to roll back to.</p>';
  const outside = s.window && !s.window.open ? ` (outside its window ${escapeHtml(s.window.spec)})` : '';
  const apply = rel.pending
    ? postButton('/apply', csrf, `Apply the pending release ${escapeHtml(rel.pending)} now${outside}`)
    : '';
  const resume = rel.held ? postButton('/resume', csrf, 'Resume following shore') : '';
  const head =
    '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width,initial-scale=1">' +
    `<title>Tender — ${escapeHtml(s.vessel)}</title>`;
  return `${head}
<style>${STYLE}</style></head><body>
<h1>${escapeHtml(s.vessel)}</h1>${message ? `<p><b>${escapeHtml(message)}</b></p>` : ''}
${live}
<p>Services: ${s.services.map((x) => `${escapeHtml(x.name)} ${escapeHtml(x.state)}`).join(', ') || 'none'}</p>
${rollback}
${apply}
${resume}
<h2>Releases on board</h2><table>${RELEASES_HEAD}${rows}</table>
<h2>Import a bundle (USB stick)</h2>
${BUNDLE_HELP}
<form id="bundle" method="post" action="/upload"><input type="file" name="bundle" required
accept=".bundle,application/octet-stream"> <button>Import</button></form><p id="bundle-result"></p>
${UPLOAD_SCRIPT(csrf)}</body></html>`;
}

/**
 * A rollback whose steps the crew watches as they happen: a page that grows a line per step (a browser
 * renders it as it comes), or for API callers asking for application/x-ndjson, a JSON line per step.
 */
async function streamRollback(
  res: ServerResponse,
  api: boolean,
  opts: { controller: Controller; log: Logger },
  release: string | undefined,
  actor: string,
): Promise<void> {
  const t0 = Date.now();
  res.writeHead(200, {
    'content-type': api ? 'application/x-ndjson' : 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
  });
  if (!api)
    res.write(
      '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Rolling back</title>' +
        '<style>body{font:16px system-ui,sans-serif;margin:20px}li{font-family:monospace}</style></head>' +
        `<body><h1>Rolling back</h1><ol>${' '.repeat(1024)}\n`,
    );
  const line = (text: string) => {
    const at = ((Date.now() - t0) / 1000).toFixed(1);
    res.write(api ? `${JSON.stringify({ progress: text, at })}\n` : `<li>${at}s ${escapeHtml(text)}</li>\n`);
  };
  try {
    const result = await opts.controller.rollback(release, actor, { progress: line });
    opts.log.info({ ...result, by: actor }, 'rollback from the console');
    res.end(
      api
        ? `${JSON.stringify({ result })}\n`
        : `</ol><p><b>${escapeHtml(`${result.app}@${result.to}`)} serves</b> ` +
            `after ${(result.tookMs / 1000).toFixed(1)}s` +
            `${result.cutShort ? ` (cut short: ${escapeHtml(result.cutShort)})` : ''}.</p>${PAGE_END}`,
    );
  } catch (err) {
    const message = errorMessage(err);
    res.end(
      api
        ? `${JSON.stringify({ error: message })}\n`
        : `</ol><p><b>Rollback refused or failed:</b> ${escapeHtml(message)}</p>${PAGE_END}`,
    );
  }
}

export function startConsole(opts: {
  config: AgentConfig;
  controller: Controller;
  store: StateStore;
  log: Logger;
}): Promise<Server> {
  const c = opts.config.console;
  if (!c) throw new ConsoleError('no console configured (enrol with --console-password)');
  const [host, portText] = [
    c.listen.slice(0, c.listen.lastIndexOf(':')),
    c.listen.slice(c.listen.lastIndexOf(':') + 1),
  ];
  const boardReleases = (): ConsoleRelease[] =>
    opts.controller.releases.list().map((r) => ({ ...r, hostAccess: opts.controller.hostAccess(r.app, r.version) }));
  // CSRF tokens tie a form to this process: a page elsewhere cannot post a rollback through the crew's browser.
  const csrfKey = randomBytes(32);
  const csrfFor = (user: string) => createHmac('sha256', csrfKey).update(user).digest('hex');

  const authUser = (req: IncomingMessage): string | undefined => {
    const h = req.headers.authorization ?? '';
    if (!h.startsWith('Basic ')) return undefined;
    const [user, ...rest] = Buffer.from(h.slice(6), 'base64').toString().split(':');
    return checkPassword(rest.join(':'), c.passwordHash) ? user || 'crew' : undefined;
  };

  const readForm = (req: IncomingMessage): Promise<Record<string, string>> =>
    new Promise((resolve, reject) => {
      let body = '';
      let tooLarge = false;
      req.setEncoding('utf8');
      req.on('data', (d: string) => {
        if (tooLarge) return;
        body += d;
        if (body.length <= MAX_BODY_BYTES) return;
        // Answered at once; the rest is read and dropped, so the client hears why instead of a reset.
        tooLarge = true;
        body = '';
        reject(new ConsoleError(`a form here is at most ${MAX_BODY_BYTES} bytes`, 'too_large', 1, 413));
      });
      req.on('end', () => {
        if (tooLarge) return;
        const type = req.headers['content-type'] ?? '';
        if (!type.includes('json')) return resolve(Object.fromEntries(new URLSearchParams(body)));
        let parsed: unknown;
        try {
          parsed = JSON.parse(body || '{}');
        } catch {
          return reject(new ConsoleError('the body is not JSON'));
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
          return reject(new ConsoleError('the body must be a JSON object'));
        // Only strings are read from a form; anything else is as good as absent.
        const form: Record<string, string> = {};
        for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') form[k] = v;
        resolve(form);
      });
      req.on('error', reject);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', 'x-frame-options': 'DENY' });
      res.end(body);
    };
    const user = authUser(req);
    if (!user) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="tender console"', 'content-type': 'application/json' });
      return res.end(JSON.stringify({ error: 'unauthorized', message: 'console password required' }));
    }
    const actor = `console user ${user} from ${req.socket.remoteAddress}`;
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://console');
    } catch {
      return send(400, 'application/json', JSON.stringify({ error: 'bad_request', message: 'not a valid path' }));
    }
    const api = url.pathname.startsWith('/api/');
    try {
      if (req.method === 'GET' && url.pathname === '/') {
        return send(
          200,
          'text/html; charset=utf-8',
          page(await buildStatus(opts.config), boardReleases(), csrfFor(user)),
        );
      }
      if (req.method === 'GET' && url.pathname === '/api/status')
        return send(200, 'application/json', JSON.stringify(await buildStatus(opts.config)));
      if (req.method === 'POST' && (url.pathname === '/upload' || url.pathname === '/api/bundle')) {
        // The body is the bundle itself, streamed into the import (which holds its own size caps). The
        // page's form sends its CSRF token in a header; JSON callers (curl) use basic auth only.
        if (!api && req.headers['x-csrf'] !== csrfFor(user)) {
          req.resume();
          return send(
            403,
            'application/json',
            JSON.stringify({ error: 'forbidden', message: 'stale form; reload the page' }),
          );
        }
        try {
          const result = await importAndApply(opts.controller, opts.store, opts.config, req, actor);
          opts.log.info(
            { app: result.app, version: result.version, outcome: result.outcome, by: actor },
            'bundle imported from the console',
          );
          return send(200, 'application/json', JSON.stringify(result));
        } catch (err) {
          req.resume();
          return send(
            err instanceof TenderError ? 409 : 500,
            'application/json',
            JSON.stringify({ error: 'refused', message: errorMessage(err) }),
          );
        }
      }
      if (
        req.method === 'POST' &&
        (url.pathname === '/rollback' ||
          url.pathname === '/api/rollback' ||
          url.pathname === '/resume' ||
          url.pathname === '/api/resume' ||
          url.pathname === '/apply' ||
          url.pathname === '/api/apply')
      ) {
        const form = await readForm(req);
        // JSON callers use basic auth only (no browser involved); form posts need the CSRF token.
        if (!api && form.csrf !== csrfFor(user))
          return send(
            403,
            'application/json',
            JSON.stringify({ error: 'forbidden', message: 'stale form; reload the page' }),
          );
        if (url.pathname.endsWith('/apply')) {
          const result = await opts.controller.apply(form.app || undefined, actor);
          opts.log.info({ ...result, by: actor }, 'pending release applied from the console');
          if (api) return send(200, 'application/json', JSON.stringify(result));
        } else if (url.pathname.endsWith('/resume')) {
          opts.controller.resume(actor);
          if (api) return send(200, 'application/json', JSON.stringify({ held: false }));
        } else {
          const accept = String(req.headers.accept ?? '');
          if (api && !accept.includes('application/x-ndjson')) {
            const result = await opts.controller.rollback(form.release || undefined, actor);
            opts.log.info({ ...result, by: actor }, 'rollback from the console');
            return send(200, 'application/json', JSON.stringify(result));
          }
          return streamRollback(res, api, opts, form.release || undefined, actor);
        }
        res.writeHead(303, { location: '/' });
        return res.end();
      }
      return send(
        404,
        'application/json',
        JSON.stringify({ error: 'not_found', message: `no route ${req.method} ${url.pathname}` }),
      );
    } catch (err) {
      const message = errorMessage(err);
      // Bad input (a body that does not parse, too large) is the caller's; a refusal is a conflict.
      const code = err instanceof ConsoleError ? err.status : err instanceof TenderError ? 409 : 500;
      if (api) return send(code, 'application/json', JSON.stringify({ error: 'failed', message }));
      return send(
        err instanceof ConsoleError ? err.status : 409,
        'text/html; charset=utf-8',
        page(await buildStatus(opts.config), boardReleases(), csrfFor(user), message),
      );
    }
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((err) => {
      opts.log.error({ reason: errorMessage(err) }, 'console request failed');
      if (!res.headersSent) res.writeHead(500).end();
    });
  };
  const tls = c.tls ? consoleCertificate(opts.config.dataDir, host) : undefined;
  const server: Server = tls
    ? createHttpsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }, onRequest)
    : createServer(onRequest);
  server.headersTimeout = 10_000;
  // A bundle upload over the vessel LAN: 1 GB at 20 MB/s takes under a minute; room for slow links.
  server.requestTimeout = 15 * 60_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(portText), host, () => {
      const certificate = tls ? consoleFingerprint(opts.config.dataDir) : undefined;
      opts.log.info({ listen: c.listen, ...(certificate && { tls: certificate }) }, 'crew console listening');
      resolve(server);
    });
  });
}
