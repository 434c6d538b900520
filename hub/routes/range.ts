/**
 * One byte range from a Range header, for resumable downloads (manifests, packs). A vessel resumes with
 * `bytes=N-`; `bytes=N-M` and a suffix `bytes=-S` are served too. Everything else is refused as
 * unsatisfiable (416) rather than guessed at: an end before the start, a start past the end, several
 * ranges, garbage. Never a negative length.
 */
export type RangeAnswer = { start: number; end: number } | { unsatisfiable: string };

// Longer digit strings are not a byte offset of anything the hub holds (and lose precision as numbers).
const RANGE = /^bytes=(\d{0,15})-(\d{0,15})$/;

/** [start, end] inclusive, as Content-Range spells it; `length` is the whole resource's. */
export function parseRange(header: string, length: number): RangeAnswer {
  const m = RANGE.exec(header.trim());
  if (!m) return { unsatisfiable: 'Range must be one range: bytes=START-[END] or bytes=-SUFFIX' };
  const [first, last] = [m[1]!, m[2]!];
  if (first === '') {
    if (last === '' || Number(last) === 0) return { unsatisfiable: 'an empty suffix range' };
    return { start: Math.max(0, length - Number(last)), end: length - 1 };
  }
  const start = Number(first);
  if (start >= length) return { unsatisfiable: `range starts at ${start}, past the last byte (${length - 1})` };
  if (last === '') return { start, end: length - 1 };
  const end = Number(last);
  if (end < start) return { unsatisfiable: `range ends at ${end}, before it starts (${start})` };
  return { start, end: Math.min(end, length - 1) };
}
