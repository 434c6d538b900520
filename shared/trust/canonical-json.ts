import { TenderError } from '../errors.js';

export class CanonicalJsonError extends TenderError {
  constructor(message: string) {
    super(message, 'not_canonical');
  }
}

/**
 * Canonical JSON for documents we sign and digest: keys sorted by UTF-16 code unit, no whitespace,
 * integers only (a float has several spellings), strings escaped as JSON.stringify does. The same value
 * always gives the same bytes, so digests of manifests are stable across machines.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, '$');
}

export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

function encode(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isSafeInteger(value)) throw new CanonicalJsonError(`${path}: ${value} is not a safe integer`);
      return String(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v, i) => encode(v, `${path}[${i}]`)).join(',')}]`;
      const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
      entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${encode(v, `${path}.${k}`)}`).join(',')}}`;
    }
    default:
      throw new CanonicalJsonError(`${path}: a ${typeof value} cannot be encoded`);
  }
}
