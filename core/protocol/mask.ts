/**
 * Masking of secrets for logs (R-87, STYLE.md convention 7): the relay's own log
 * lines and the logging plugin mask session-ids the same way.
 */

/** Masks a secret for logs: the first 4 characters stay, to tell sessions apart. */
export function maskId(id: string): string {
  return id.length <= 4 ? '****' : `${id.slice(0, 4)}…`;
}
