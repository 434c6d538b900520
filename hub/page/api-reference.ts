import { escapeHtml } from '../../shared/html.js';

/**
 * The API reference as one HTML page, rendered on the hub from the generated OpenAPI document: no
 * script, no assets to fetch (a vessel's or an office's browser may reach nothing but the hub), so it
 * works from the single executable as it is.
 */

type Json = Record<string, unknown>;
type Schema = Json & {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  additionalProperties?: Schema | boolean;
  prefixItems?: Schema[];
  enum?: unknown[];
  const?: unknown;
  description?: string;
};
interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: Record<string, unknown>[];
  'x-tender-auth'?: string;
  parameters?: { name: string; in: string; required?: boolean; schema?: Schema; description?: string }[];
  requestBody?: { description?: string; content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: Schema }> }>;
}
interface Document {
  info?: { title?: string; description?: string };
  paths?: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Schema> };
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1b2733;background:#f5f7f9}
header{background:#12324a;color:#fff;padding:10px 20px}header h1{font-size:18px;margin:0}
main{padding:16px 20px;max-width:1100px}nav a{margin-right:12px}
section.op{background:#fff;border:1px solid #e3e8ee;margin:14px 0;padding:10px 14px}
h2{font-size:16px;margin:24px 0 4px}h3{font-size:15px;margin:0 0 4px;font-family:ui-monospace,monospace}
h4{font-size:13px;margin:10px 0 2px;color:#40505f}
.m{display:inline-block;min-width:44px;padding:1px 6px;margin-right:6px;color:#fff;border-radius:3px;font-size:12px}
.GET{background:#176d2c}.POST{background:#12508a}.PUT{background:#8a5a12}
code,.t{font-family:ui-monospace,monospace;font-size:12.5px}.t{color:#6b3a8a}.muted{color:#6b7785}
ul.s{margin:2px 0;padding-left:18px}ul.s li{margin:1px 0}pre{white-space:pre-wrap;margin:4px 0}`;

function refName(ref: string): string {
  return ref.replace(/^#\/components\/schemas\//, '');
}

/** A schema as a nested list of fields: name, type, constraints, description. */
function renderSchema(s: Schema | undefined, doc: Document): string {
  if (!s) return '<span class="muted">any</span>';
  // Shared schemas (the error body) are named and linked, described once at the end of the page.
  if (s.$ref) {
    const name = refName(s.$ref);
    return `<a class="t" href="#schema-${escapeHtml(name)}">${escapeHtml(name)}</a>`;
  }
  const alts = s.anyOf ?? s.oneOf;
  if (alts) {
    return `one of:<ul class="s">${alts.map((a) => `<li>${renderSchema(a, doc)}</li>`).join('')}</ul>`;
  }
  const desc = s.description ? ` <span class="muted">${escapeHtml(s.description)}</span>` : '';
  if (s.properties) {
    const req = new Set(s.required ?? []);
    const fields = Object.entries(s.properties)
      .map(
        ([k, v]) =>
          `<li><code>${escapeHtml(k)}</code>${req.has(k) ? '' : '<span class="muted">?</span>'}: ` +
          `${renderSchema(v, doc)}</li>`,
      )
      .join('');
    return `<span class="t">object</span>${desc}<ul class="s">${fields}</ul>`;
  }
  if (s.prefixItems) {
    const items = s.prefixItems.map((i) => renderSchema(i, doc)).join(', ');
    return `<span class="t">[${items}]</span>${desc}`;
  }
  if (s.items) return `<span class="t">array of</span> ${renderSchema(s.items, doc)}${desc}`;
  if (typeof s.additionalProperties === 'object')
    return `<span class="t">map of</span> ${renderSchema(s.additionalProperties, doc)}${desc}`;
  return `<span class="t">${escapeHtml(typeText(s))}</span>${desc}`;
}

function typeText(s: Schema): string {
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((e) => JSON.stringify(e)).join(' | ');
  const type = Array.isArray(s.type) ? s.type.join(' | ') : (s.type ?? 'any');
  const notes: string[] = [];
  for (const k of ['format', 'pattern', 'minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'maxItems']) {
    // A format says what a pattern spells out (a date-time's regex helps nobody reading).
    if (s[k] !== undefined && !(k === 'pattern' && s.format)) notes.push(`${k} ${String(s[k])}`);
  }
  if (s.default !== undefined) notes.push(`default ${JSON.stringify(s.default)}`);
  return notes.length ? `${type} (${notes.join(', ')})` : type;
}

function renderContent(content: Record<string, { schema?: Schema }> | undefined, doc: Document): string {
  if (!content) return '';
  return Object.entries(content)
    .map(([type, c]) => `<div><code>${escapeHtml(type)}</code>: ${renderSchema(c.schema, doc)}</div>`)
    .join('');
}

function renderOperation(method: string, path: string, op: Operation, doc: Document): string {
  const m = method.toUpperCase();
  const params = (op.parameters ?? [])
    .map(
      (p) =>
        `<li><code>${escapeHtml(p.name)}</code> <span ` +
        `class="muted">(${escapeHtml(p.in)}${p.required ? ', required' : ''})</span>: ` +
        `${renderSchema(p.schema, doc)}${muted(p.description, ' <span class="muted">', '</span>')}</li>`,
    )
    .join('');
  const body = op.requestBody
    ? `<h4>Request body</h4>${muted(op.requestBody.description, '<div class="muted">', '</div>')}` +
      renderContent(op.requestBody.content, doc)
    : '';
  const responses = Object.entries(op.responses ?? {})
    .map(
      ([code, r]) =>
        `<li><b>${escapeHtml(code)}</b> ${escapeHtml(r.description ?? '')}${renderContent(r.content, doc)}</li>`,
    )
    .join('');
  return `<section class="op" id="${escapeHtml(`${m} ${path}`)}">
<h3><span class="m ${m}">${m}</span>${escapeHtml(path)}</h3>
<div>${escapeHtml(op.summary ?? '')}</div>${muted(op.description, '<div class="muted">', '</div>')}
<div class="muted">Credentials: ${escapeHtml(op['x-tender-auth'] ?? (op.security?.length ? 'required' : 'none'))}</div>
${params ? `<h4>Parameters</h4><ul class="s">${params}</ul>` : ''}${body}
<h4>Responses</h4><ul class="s">${responses}</ul></section>`;
}

export function renderApiReference(doc: Document): string {
  const byTag = new Map<string, string[]>();
  for (const [path, ops] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(ops)) {
      const tag = op.tags?.[0] ?? 'other';
      byTag.set(tag, [...(byTag.get(tag) ?? []), renderOperation(method, path, op, doc)]);
    }
  }
  const nav = [...byTag.keys()].map((t) => `<a href="#tag-${escapeHtml(t)}">${escapeHtml(t)}</a>`).join('');
  const sections = [...byTag]
    .map(([tag, ops]) => `<h2 id="tag-${escapeHtml(tag)}">${escapeHtml(tag)}</h2>${ops.join('\n')}`)
    .join('\n');
  const title = doc.info?.title ?? 'API';
  const intro = (doc.info?.description ?? '')
    .split(/\n\s*\n/)
    .map((p) => `<p>${escapeHtml(p.replace(/\s*\n\s*/g, ' '))}</p>`)
    .join('');
  const shared = Object.entries(doc.components?.schemas ?? {})
    .map(
      ([name, s]) =>
        `<section class="op" id="schema-${escapeHtml(name)}"><h3>${escapeHtml(name)}</h3>` +
        `${renderSchema(s, doc)}</section>`,
    )
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>
<header><h1>${escapeHtml(title)}</h1></header><main>
${intro}
<p>The same document as JSON: <a href="openapi.json"><code>openapi.json</code></a>.</p>
<nav>${nav}</nav>
${sections}
${shared ? `<h2 id="schemas">shared schemas</h2>${shared}` : ''}</main></body></html>`;
}

/** Optional prose, escaped and wrapped in the given tags; nothing when there is none. */
function muted(text: string | undefined, open: string, close: string): string {
  return text ? `${open}${escapeHtml(text)}${close}` : '';
}
