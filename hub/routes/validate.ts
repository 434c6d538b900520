import type { z } from 'zod';
import { TenderError } from '../../shared/errors.js';

export class RequestValidationError extends TenderError {
  constructor(message: string) {
    super(message, 'bad_request', 1, 400);
  }
}

/** Validate a body (or query) with zod; the message names the first field that is wrong. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown, what = 'body'): z.infer<S> {
  const r = schema.safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.length ? issue.path.join('.') : what;
    throw new RequestValidationError(`${field}: ${issue.message}`);
  }
  return r.data;
}
