import { stringOpt, type Command } from '../../shared/cli.js';
import { UsageError } from '../../shared/errors.js';
import { openChunkStore } from '../store/chunk-stores.js';
import { migratePgSchema, migrateSqliteToPg, type MigrateReport } from '../store/migrate-to-postgres.js';
import { redact } from '../store/open-store.js';

export const hubMigrate: Command = {
  path: ['hub', 'migrate'],
  summary: "bring a PostgreSQL hub database's schema up to date, or move an embedded hub into one",
  options: {
    to: { type: 'string', description: 'postgres://USER:PASSWORD@HOST:PORT/DB (or TENDER_HUB_DB)' },
    from: { type: 'string', description: 'an embedded hub data directory (hub.db, chunks/) to move into --to' },
    chunks: { type: 'string', description: 'with --from: where the chunks go, a folder or s3://BUCKET/PREFIX' },
  },
  details:
    'Without --from: applies the schema migrations this tender carries (what `hub serve --db` also does at\n' +
    'start). With --from: stop the embedded hub, then every record is copied as it is into the empty\n' +
    'database (vessels keep their ids and keys: none re-enrols) and every chunk into --chunks. Point the\n' +
    "vessels' hub name at the new hubs; the vessels notice nothing else.",
  async run(ctx) {
    const to = stringOpt(ctx, 'to') ?? (ctx.env.TENDER_HUB_DB || undefined);
    if (!to) throw new UsageError('--to postgres://... is required (or TENDER_HUB_DB)');
    if (!/^postgres(ql)?:\/\//.test(to))
      throw new UsageError(`--to must be a postgres://USER:PASSWORD@HOST:PORT/DB URL, got ${redact(to)}`);
    const from = stringOpt(ctx, 'from');
    if (from === undefined) {
      if (stringOpt(ctx, 'chunks') !== undefined) throw new UsageError('--chunks goes with --from');
      return { to: redact(to), schema: await migratePgSchema(to) };
    }
    const where = stringOpt(ctx, 'chunks') ?? (ctx.env.TENDER_HUB_CHUNKS || undefined);
    if (!where) throw new UsageError('--from needs --chunks DIR or s3://BUCKET/PREFIX: where the chunks go');
    const chunks = await openChunkStore(where, ctx.env);
    const report = await migrateSqliteToPg(from, to, chunks, (m) => ctx.stderr.write(`${m}\n`));
    return { from, to: redact(to), chunksTo: where, ...report };
  },
  human: (r: { to: string; schema: number; from?: string } & Partial<MigrateReport>) =>
    r.from === undefined
      ? `${r.to}: schema ${r.schema}`
      : `moved ${r.from} into ${r.to} (schema ${r.schema}): ` +
        `${Object.values(r.tables ?? {}).reduce((a, n) => a + n, 0)} rows, ` +
        `${r.chunks?.copied ?? 0} chunks copied (${r.chunks?.present ?? 0} already there)`,
};
