import { errorMessage } from '../../shared/errors.js';
import {
  ROLLBACK_DIRECTIVE_MAX_BYTES,
  ROLLBACK_DIRECTIVE_MAX_LIFETIME_MS,
  rollbackDirectiveSchema,
  type RollbackDirective,
} from '../../shared/protocol/rollback-directive.js';
import { readEnvelope } from '../../shared/trust/envelope.js';
import { verifySignedDocument } from '../../shared/trust/root.js';
import { sha256Hex } from '../../shared/trust/secrets.js';
import { describeZodError } from '../../shared/validation.js';
import { latestRoot } from '../roots.js';
import type { HubStore, StoredRelease } from '../store/hub-store.js';
import type { NewDirective } from '../store/rollout-records.js';
import { RolloutEngineError } from './engine.js';

/**
 * A signed rollback directive as a publisher uploads it with `rollout start --rollback`: checked here
 * under the hub's root before it is stored and handed on (the vessel checks it again under its own root,
 * with its own clock and counter). The hub cannot make one: it holds no release key.
 */
export async function directiveForRollout(
  store: HubStore,
  base64: string,
  release: StoredRelease,
  target: string,
  now: number,
): Promise<{ directive: NewDirective; payload: RollbackDirective }> {
  const bytes = Buffer.from(base64, 'base64');
  const latest = await latestRoot(store);
  if (!latest) throw new RolloutEngineError('the hub has no root document yet');
  let payload: RollbackDirective;
  try {
    const doc = verifySignedDocument(latest.root, readEnvelope(bytes, ROLLBACK_DIRECTIVE_MAX_BYTES), 'rollback');
    const { _type: _signedType, ...rest } = doc.payload;
    const r = rollbackDirectiveSchema.safeParse(rest);
    if (!r.success) throw new RolloutEngineError(`rollback directive: ${describeZodError(r.error, 'payload')}`);
    payload = r.data;
  } catch (err) {
    if (err instanceof RolloutEngineError) throw err;
    throw new RolloutEngineError(`rollback directive refused: ${errorMessage(err)}`);
  }
  const named = `rollback directive #${payload.counter}`;
  if (payload.app !== release.app || payload.version !== release.version)
    throw new RolloutEngineError(
      `${named} names ${payload.app}@${payload.version}, not the rollout's ${release.app}@${release.version}`,
    );
  const envelope = await store.releases.envelope(release.id);
  if (!envelope || sha256Hex(envelope) !== payload.digest)
    throw new RolloutEngineError(`${named} names another manifest of ${release.app}@${release.version} (digest)`);
  const expiresAt = Date.parse(payload.expires);
  if (expiresAt <= now) throw new RolloutEngineError(`${named} expired at ${payload.expires}`);
  if (expiresAt - Date.parse(payload.issuedAt) > ROLLBACK_DIRECTIVE_MAX_LIFETIME_MS)
    throw new RolloutEngineError(`${named} lives longer than ${ROLLBACK_DIRECTIVE_MAX_LIFETIME_MS / 86_400_000} days`);
  const next = await store.directives.nextCounter(release.app);
  if (payload.counter < next)
    throw new RolloutEngineError(
      `${named}: counter must be at least ${next} (a replay otherwise)`,
      'stale_counter',
      409,
    );
  const t = payload.targets;
  const covers =
    t.all === true ||
    (target.startsWith('vessel:') && (t.vessels ?? []).includes(target.slice(7))) ||
    (target.startsWith('group:') && (t.groups ?? []).includes(target.slice(6)));
  if (!covers) throw new RolloutEngineError(`${named} does not name the rollout's target ${target}`);
  return {
    payload,
    directive: {
      app: payload.app,
      version: payload.version,
      counter: payload.counter,
      envelope: bytes,
      targets: t,
      expiresAt,
    },
  };
}
