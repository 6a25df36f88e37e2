/**
 * "Is it safe to checkpoint?": every reason a process (tree) cannot be
 * checkpointed and restarted faithfully, each with a stable code (NOCR_CODES in
 * src/kinds/live.ts), the task and a plain sentence. Used by `crimg check` (without
 * freezing); dump gets the same reasons from the inspection that also reads the
 * state it saves (inspect.ts), and writes them into the image as NOCR records.
 */
import type { NocrReason } from '../model.js';
import { type InspectOptions, inspectProcesses } from './inspect.js';

export { NOCR_CODES, type NocrCode } from '../kinds/live.js';

/** Codes that do not make a checkpoint unsafe: recorded in the image, reported by check, refused by restore only
 *  without the option that handles them (STDIO: --inherit-stdio). */
export const NOTE_CODES: ReadonlySet<string> = new Set(['STDIO']);

/** The reasons that make a checkpoint unsafe (all but NOTE_CODES). */
export function blocking<T extends { code: string }>(reasons: T[]): T[] {
  return reasons.filter((r) => !NOTE_CODES.has(r.code));
}

export type CheckOptions = Omit<InspectOptions, 'wantState'>;

/** Every reason the tree rooted at the given processes cannot be checkpointed faithfully. */
export function checkProcesses(pids: number[], opts: CheckOptions = {}): NocrReason[] {
  return inspectProcesses(pids, { ...opts, wantState: false }).reasons;
}
