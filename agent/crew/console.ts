import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHmac, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { checkPassword } from './password.js';
import { errorMessage, TenderError } from '../../shared/errors.js';
import { escapeHtml } from '../../shared/html.js';
import type { AgentConfig } from '../config.js';
import type { Controller } from '../release/controller.js';
import { buildStatus, type StatusView } from '../status.js';

/**
 * The crew's console on the vessel LAN: status and a rollback button, behind the password set at
 * enrolment (HTTP basic auth). It calls the same controller as `tender rollback`, so both paths behave
 * alike, and it works with no link at all.
 */
export class ConsoleError extends TenderError {}

// A rollback request carries no body worth more than this.
const MAX_BODY_BYTES = 4096;

function page(
  s: StatusView,
  releases: ReturnType<Controller['releases']['list']>,
  csrf: string,
  message?: string,
): string {
  const rows = releases
    .map(
      (
        r,
      ) => `<tr><td>${r.state === 'live' ? '<b>live</b>' : escapeHtml(r.state)}</td><td>${escapeHtml(r.version)}</td><td>${r.lastLiveAt ? escapeHtml(new Date(r.lastLiveAt).toISOString().slice(0, 16).replace('T', ' ')) : 'never'}</td>
<td>${r.state !== 'live' && r.lastLiveAt ? `<form method="post" action="/rollback"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="release" value="${escapeHtml(`${r.app}@${r.version}`)}"><button>Roll back to ${escapeHtml(r.version)}</button></form>` : ''}</td></tr>`,
    )
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Tender — ${escapeHtml(s.vessel)}</title>
<style>body{font:16px system-ui,sans-serif;margin:20px;max-width:900px}td,th{padding:6px 10px;text-align:left;border-bottom:1px solid #ddd}button{font-size:16px;padding:8px 14px}.big{font-size:20px;background:#a40e26;color:#fff;border:0}</style></head><body>
<h1>${escapeHtml(s.vessel)}</h1>${message ? `<p><b>${escapeHtml(message)}</b></p>` : ''}
<p>Live release: <b>${escapeHtml(s.release.current ?? 'none')}</b>${s.release.held ? ' (held by the crew)' : ''}. Previous: ${escapeHtml(s.release.previous ?? 'none')}. Link to shore: ${escapeHtml(s.link.state)}.</p>
<p>Services: ${s.services.map((x) => `${escapeHtml(x.name)} ${escapeHtml(x.state)}`).join(', ') || 'none'}</p>
<form method="post" action="/rollback"><input type="hidden" name="csrf" value="${csrf}"><button class="big">Roll back to the previous release</button></form>
${s.release.pending ? `<form method="post" action="/apply"><input type="hidden" name="csrf" value="${csrf}"><button>Apply the pending release ${escapeHtml(s.release.pending)} now${s.window && !s.window.open ? ` (outside its window ${escapeHtml(s.window.spec)})` : ''}</button></form>` : ''}
${s.release.held ? `<form method="post" action="/resume"><input type="hidden" name="csrf" value="${csrf}"><button>Resume following shore</button></form>` : ''}
<h2>Releases on board</h2><table><tr><th>State</th><th>Version</th><th>Last live</th><th></th></tr>${rows}</table></body></html>`;
}

export function startConsole(opts: { config: AgentConfig; controller: Controller; log: Logger }): Promise<Server> {
  const c = opts.config.console;
  if (!c) throw new ConsoleError('no console configured (enrol with --console-password)');
  const [host, portText] = [
    c.listen.slice(0, c.listen.lastIndexOf(':')),
    c.listen.slice(c.listen.lastIndexOf(':') + 1),
  ];
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
      req.setEncoding('utf8');
      req.on('data', (d: string) => {
        body += d;
        if (body.length > MAX_BODY_BYTES) req.destroy(new ConsoleError('body too large'));
      });
      req.on('end', () => {
        const type = req.headers['content-type'] ?? '';
        try {
          resolve(
            type.includes('json')
              ? (JSON.parse(body || '{}') as Record<string, string>)
              : Object.fromEntries(new URLSearchParams(body)),
          );
        } catch (err) {
          reject(err);
        }
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
    const url = new URL(req.url ?? '/', 'http://console');
    const api = url.pathname.startsWith('/api/');
    try {
      if (req.method === 'GET' && url.pathname === '/') {
        return send(
          200,
          'text/html; charset=utf-8',
          page(await buildStatus(opts.config), opts.controller.releases.list(), csrfFor(user)),
        );
      }
      if (req.method === 'GET' && url.pathname === '/api/status')
        return send(200, 'application/json', JSON.stringify(await buildStatus(opts.config)));
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
          const result = await opts.controller.rollback(form.release || undefined, actor);
          opts.log.info({ ...result, by: actor }, 'rollback from the console');
          if (api) return send(200, 'application/json', JSON.stringify(result));
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
      if (api)
        return send(
          err instanceof TenderError ? 409 : 500,
          'application/json',
          JSON.stringify({ error: 'failed', message }),
        );
      return send(
        409,
        'text/html; charset=utf-8',
        page(await buildStatus(opts.config), opts.controller.releases.list(), csrfFor(user), message),
      );
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      opts.log.error({ reason: errorMessage(err) }, 'console request failed');
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 120_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(portText), host, () => {
      opts.log.info({ listen: c.listen }, 'crew console listening');
      resolve(server);
    });
  });
}
