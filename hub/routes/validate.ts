import { TenderError } from '../../shared/errors.js';

/** A request the schemas let through but the route refuses (a rule across fields, a body it decodes). */
export class RequestValidationError extends TenderError {
  constructor(message: string) {
    super(message, 'bad_request', 1, 400);
  }
}
