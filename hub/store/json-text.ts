/** Stored JSON text back as a value; text that is not JSON (a vessel's odd event body) comes back as it is. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
