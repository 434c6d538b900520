import { errorMessage } from '../../shared/errors.js';
import { readEnvelope } from '../../shared/trust/envelope.js';
import { verifySignedDocument, type TrustedRoot } from '../../shared/trust/root.js';
import {
  directiveTargets,
  rollbackDirectiveSchema,
  ROLLBACK_DIRECTIVE_MAX_BYTES,
  ROLLBACK_DIRECTIVE_MAX_LIFETIME_MS,
  type RollbackDirective,
} from '../../shared/protocol/rollback-directive.js';
import { describeZodError } from '../../shared/validation.js';

/** The release a vessel would go back to, as the desired state names it and the board keeps it. */
export interface RollbackTarget {
  app: string;
  version: string;
  digest: string;
}

export interface DirectiveContext {
  root: TrustedRoot;
  vessel: string;
  groups: readonly string[];
  /** The corrected clock (ms). */
  now: number;
  /** The counter of the last directive accepted for the target's app (0: none yet). */
  lastCounter: number;
}

export type DirectiveVerdict = { ok: true; directive: RollbackDirective } | { ok: false; reason: string };

/** One directive (base64 of its envelope) checked against one target: the first reason it fails, or the directive. */
export function checkDirective(base64: string, target: RollbackTarget, ctx: DirectiveContext): DirectiveVerdict {
  let d: RollbackDirective;
  try {
    const bytes = Buffer.from(base64, 'base64');
    const doc = verifySignedDocument(ctx.root, readEnvelope(bytes, ROLLBACK_DIRECTIVE_MAX_BYTES), 'rollback');
    const { _type: _signedType, ...payload } = doc.payload;
    const r = rollbackDirectiveSchema.safeParse(payload);
    if (!r.success) return { ok: false, reason: `directive invalid: ${describeZodError(r.error, 'payload')}` };
    d = r.data;
  } catch (err) {
    return { ok: false, reason: `directive refused: ${errorMessage(err)}` };
  }
  const named = `directive #${d.counter} (${d.app}@${d.version})`;
  if (d.app !== target.app) return { ok: false, reason: `${named} is for app ${d.app}, not ${target.app}` };
  if (!directiveTargets(d, ctx.vessel, ctx.groups))
    return { ok: false, reason: `${named} does not name this vessel (${ctx.vessel}) or its groups` };
  if (d.version !== target.version || d.digest !== target.digest)
    return { ok: false, reason: `${named} names another release than ${target.app}@${target.version}` };
  const issued = Date.parse(d.issuedAt);
  const expires = Date.parse(d.expires);
  if (expires - issued > ROLLBACK_DIRECTIVE_MAX_LIFETIME_MS)
    return { ok: false, reason: `${named} lives longer than ${ROLLBACK_DIRECTIVE_MAX_LIFETIME_MS / 86_400_000} days` };
  if (expires <= ctx.now) return { ok: false, reason: `${named} expired at ${d.expires}` };
  if (d.counter <= ctx.lastCounter)
    return { ok: false, reason: `${named} replayed: counter at or below the last accepted (#${ctx.lastCounter})` };
  return { ok: true, directive: d };
}

/**
 * The directive among those the hub sent that allows going back to `target`, or why none does (the
 * reason of the most relevant refusal: one for the right app before one for another).
 */
export function findDirective(
  directives: readonly string[],
  target: RollbackTarget,
  ctx: DirectiveContext,
): DirectiveVerdict {
  let best: string | undefined;
  for (const b of directives) {
    const v = checkDirective(b, target, ctx);
    if (v.ok) return v;
    if (best === undefined || !/ is for app /.test(v.reason)) best = v.reason;
  }
  return { ok: false, reason: best ?? 'no signed rollback directive names it' };
}
