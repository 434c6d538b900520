import { TenderError } from '../../shared/errors.js';

/** A store location that cannot be used, naming the setting at fault. */
export class HubStoreConfigError extends TenderError {}
