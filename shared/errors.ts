/**
 * Every error a user can see derives from TenderError: the CLI prints its message as one line and exits
 * with its exit code; the hub's HTTP edge maps `status` onto the response.
 */
export class TenderError extends Error {
  constructor(
    message: string,
    readonly code: string = 'error',
    readonly exitCode: number = 1,
    readonly status: number = 400,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Wrong flags or arguments on the command line. */
export class UsageError extends TenderError {
  constructor(message: string) {
    super(message, 'usage', 2, 400);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
