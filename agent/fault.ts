/**
 * Fault injection for the crash tests: with TENDER_FAULT=kill:before:flip (or after:gate, ...) the agent
 * kills itself with SIGKILL at that point of an update, exactly as a power cut would stop it. Unset in
 * production, where this is a single string comparison.
 */
export function faultPoint(step: string, when: 'before' | 'after'): void {
  const f = process.env.TENDER_FAULT;
  if (f && f === `kill:${when}:${step}`) process.kill(process.pid, 'SIGKILL');
}
