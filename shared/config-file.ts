import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { TenderError } from './errors.js';
import { parseStrictJson, StrictJsonError } from './trust/strict-json.js';
import { describeZodError } from './validation.js';

export class ConfigError extends TenderError {}

/** Read and validate a JSON config file; every error names the file and the field. */
export function loadJsonConfig<S extends z.ZodType>(
  path: string,
  schema: S,
  missingHint = 'enrol first: tender agent enroll',
): z.infer<S> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(
      `cannot read config ${path}: ` +
        `${code === 'ENOENT' ? `no such file (${missingHint})` : (code ?? (err as Error).message)}`,
    );
  }
  let json: unknown;
  try {
    json = parseStrictJson(bytes, { maxBytes: 1024 * 1024 });
  } catch (err) {
    if (err instanceof StrictJsonError) throw new ConfigError(`${path}: ${err.message}`);
    throw err;
  }
  const r = schema.safeParse(json);
  if (!r.success) throw new ConfigError(`${path}: field ${describeZodError(r.error, '(root)')}`);
  return r.data;
}
