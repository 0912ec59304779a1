/**
 * Readers for option schemas: they turn the YAML and command-line spellings of a value (`key=2e-4` arrives as a
 * string, YAML `null` as null) into what the schema checks. The kernel's keys use them, and plugins should too, so
 * that every key of a config reads the same way: `z.preprocess(readNumber, z.number())`.
 */

/** YAML `null` → undefined (so a defaulted key takes its default). */
export function nullToUndefined(value: unknown): unknown {
  return value === null ? undefined : value;
}

/** `'2e-4'` → 2e-4; null → undefined; anything else unchanged (the schema reports it). */
export function readNumber(value: unknown): unknown {
  if (typeof value !== 'string') return nullToUndefined(value);
  const trimmed = value.trim();
  return trimmed !== '' && Number.isFinite(Number(trimmed)) ? Number(trimmed) : value;
}

/** `'true'` / `'false'` (any case) → booleans; null → undefined. */
export function readBoolean(value: unknown): unknown {
  if (typeof value !== 'string') return nullToUndefined(value);
  const lowered = value.trim().toLowerCase();
  return lowered === 'true' ? true : lowered === 'false' ? false : value;
}

/** `a,b` or `[a, b]` → `['a', 'b']` (items trimmed, empty ones dropped); null → undefined. */
export function readList(value: unknown): unknown {
  if (typeof value === 'string') {
    return value
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item.length > 0);
  }
  if (Array.isArray(value)) return value.map((item) => (typeof item === 'string' ? item.trim() : item));
  return nullToUndefined(value);
}

/** A list-valued key's names as strings (`readList`'s spellings); nothing set gives []. */
export function listOf(value: unknown): string[] {
  const read = readList(value);
  if (read === undefined) return [];
  return Array.isArray(read) ? read.map(String) : [String(read)];
}
