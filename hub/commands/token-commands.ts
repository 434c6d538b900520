import { positional, requiredOpt, stringOpt, intOpt, table, type Command } from '../../shared/cli.js';
import { UsageError } from '../../shared/errors.js';
import { writeFileAtomic } from '../../shared/fs-atomic.js';
import { parseDuration } from '../../shared/duration.js';
import { HUB_OPTIONS, opsCall, resolveHubTarget } from '../../shared/ops-client.js';
import { ROLES } from '../../shared/protocol/names.js';
import { paths, ROUTES } from '../../shared/protocol/routes.js';
import type { AuditRecordView, OpsTokenView } from '../../shared/protocol/ops-bodies.js';

/** `tender token create|list|revoke` and `tender audit`: ops tokens and the audit log through the API (admin). */

export const tokenCreate: Command = {
  path: ['token', 'create'],
  summary: 'create an ops token with a role and an expiry; the token is shown once (admin)',
  options: {
    ...HUB_OPTIONS,
    role: { type: 'string', description: `one of ${ROLES.join(', ')}` },
    name: { type: 'string', description: 'who or what the token is for' },
    expires: { type: 'string', description: 'lifetime (e.g. 30d, 12h)', default: '90d' },
  },
  async run(ctx) {
    const role = requiredOpt(ctx, 'role');
    if (!(ROLES as readonly string[]).includes(role))
      throw new UsageError(`--role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(role)}`);
    const expires = stringOpt(ctx, 'expires');
    return opsCall(resolveHubTarget(ctx), ROUTES.createOpsToken, paths.opsTokens(), {
      role,
      name: requiredOpt(ctx, 'name'),
      ttlSeconds: expires ? Math.round(parseDuration(expires, '--expires') / 1000) : undefined,
    });
  },
  human: (r: { id: string; token: string; expiresAt?: string }) =>
    `${r.token}\n# ops token ${r.id}, valid until ${r.expiresAt ?? 'never'}; shown once`,
};

export const tokenList: Command = {
  path: ['token', 'list'],
  summary: 'every ops token: id, role, name, state and expiry, never the secret (admin)',
  options: HUB_OPTIONS,
  async run(ctx) {
    return opsCall(resolveHubTarget(ctx), ROUTES.listOpsTokens, paths.opsTokens());
  },
  human: (r: { tokens: OpsTokenView[] }) =>
    table(
      ['ID', 'ROLE', 'NAME', 'STATE', 'CREATED', 'EXPIRES'],
      r.tokens.map((t) => [t.id, t.role, t.name, t.state, t.createdAt, t.expiresAt ?? 'never']),
    ),
};

export const tokenRevoke: Command = {
  path: ['token', 'revoke'],
  args: 'ID',
  summary: 'revoke an ops token: every later request with it is refused (admin)',
  options: HUB_OPTIONS,
  async run(ctx) {
    const id = positional(ctx, 0, 'ID');
    return opsCall(resolveHubTarget(ctx), ROUTES.revokeOpsToken, paths.opsTokenRevoke(id), {});
  },
  human: (r: OpsTokenView) => `ops token ${r.id} (${r.name}, ${r.role}) revoked`,
};

// The hub answers at most this many records a page; the CLI pages on until it has them all.
const AUDIT_PAGE = 1000;

export const auditCommand: Command = {
  path: ['audit'],
  summary: 'the audit log of ops actions, oldest first; --export FILE writes it all as JSON (admin)',
  options: {
    ...HUB_OPTIONS,
    since: { type: 'string', description: 'only records from this ISO time on, or this long ago (e.g. 7d)' },
    limit: { type: 'string', description: 'at most this many records (default: all with --export, else 100)' },
    export: { type: 'string', description: 'write every record as a JSON array to FILE' },
  },
  async run(ctx) {
    const target = resolveHubTarget(ctx);
    const sinceOpt = stringOpt(ctx, 'since');
    const since = sinceOpt === undefined ? undefined : sinceTime(sinceOpt);
    const out = stringOpt(ctx, 'export');
    const limit = intOpt(ctx, 'limit', out ? Number.MAX_SAFE_INTEGER : 100, 1, Number.MAX_SAFE_INTEGER);
    const records: AuditRecordView[] = [];
    let after: number | undefined;
    for (;;) {
      const page = await opsCall(
        target,
        ROUTES.listAudit,
        paths.audit({ after, since, limit: Math.min(AUDIT_PAGE, limit - records.length) }),
      );
      records.push(...page.records);
      if (page.next === null || records.length >= limit) break;
      after = page.next;
    }
    if (out) {
      writeFileAtomic(out, `${JSON.stringify(records, null, 2)}\n`, 0o600);
      return { exported: records.length, file: out };
    }
    return { records };
  },
  human: (r: { records?: AuditRecordView[]; exported?: number; file?: string }) =>
    r.records
      ? table(
          ['ID', 'AT', 'ACTOR', 'ACTION', 'DETAIL'],
          r.records.map((a) => [String(a.id), a.at, a.actor, a.action, JSON.stringify(a.detail)]),
        )
      : `${r.exported} audit records written to ${r.file}`,
};

function sinceTime(text: string): string {
  if (/^\d{4}-\d\d-\d\d/.test(text)) {
    const t = Date.parse(text);
    if (Number.isNaN(t)) throw new UsageError(`--since: not a time: ${JSON.stringify(text)}`);
    return new Date(t).toISOString();
  }
  return new Date(Date.now() - parseDuration(text, '--since')).toISOString();
}

export const TOKEN_COMMANDS = [tokenCreate, tokenList, tokenRevoke, auditCommand];
