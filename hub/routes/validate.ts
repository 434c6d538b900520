import { TenderError } from '../../shared/errors.js';
import { decodeUploadPack, type UploadEntry } from '../../shared/protocol/pack.js';

/** A request the schemas let through but the route refuses (a rule across fields, a body it decodes). */
export class RequestValidationError extends TenderError {
  constructor(message: string) {
    super(message, 'bad_request', 1, 400);
  }
}

/** The entries of an uploaded chunk pack (release or backup chunks); a missing or malformed body is a 400. */
export function uploadPackEntries(body: Buffer | undefined): UploadEntry[] {
  if (!body) throw new RequestValidationError('body: a chunk pack is required');
  try {
    return decodeUploadPack(body);
  } catch (err) {
    throw new RequestValidationError((err as Error).message);
  }
}
