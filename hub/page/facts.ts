import { SERVICE_OK_STATES, vesselStatusReportSchema, type VesselStatusReport } from '../../shared/protocol/bodies.js';

/**
 * What a status report says, in a word per fact, for the fleet page's filters and counts. A report only
 * ever says what its vessel saw when it sent it: the page shows each flag beside the report's age.
 */
export const STATUS_FLAGS = ['failing', 'updating', 'held', 'window'] as const;
export type StatusFlag = (typeof STATUS_FLAGS)[number];

export function statusFlagsOf(r: VesselStatusReport): StatusFlag[] {
  const flags = new Set<StatusFlag>();
  if (r.services.some((s) => !SERVICE_OK_STATES.includes(s.state) && s.state !== 'starting')) flags.add('failing');
  for (const a of r.apps ?? []) {
    const p = a.pending?.state;
    if (p === 'failed' || p === 'refused') flags.add('failing');
    else if (p === 'queued' || p === 'downloading') flags.add('updating');
    else if (p === 'waiting-for-window') flags.add('window');
    if (p === 'held' || a.held) flags.add('held');
  }
  if (!r.apps && r.pending) flags.add(r.held ? 'held' : 'updating');
  if (r.hold) flags.add('held');
  return STATUS_FLAGS.filter((f) => flags.has(f));
}

/** The stored form: ",failing,held," (empty string: none), so `LIKE '%,held,%'` filters in any SQL engine. */
export function encodeFlags(flags: readonly StatusFlag[]): string {
  return flags.length ? `,${flags.join(',')},` : '';
}

/** A stored report read back; null when it no longer fits the schema (written by an older hub, altered). */
export function readReport(status: unknown): VesselStatusReport | null {
  const r = vesselStatusReportSchema.safeParse(status);
  return r.success ? r.data : null;
}
