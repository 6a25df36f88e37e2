/**
 * A kind of saved state: one optional record under a TASK, THREAD or FD record, and everything the format needs to
 * know of it (its record definition, where its value sits in the model, encode and decode with the semantic checks,
 * its text and JSON views and its differences). The writer, the reader's grammar, `show`, `diff` and docs/FORMAT.md
 * loop over the registry (./index.ts); nothing else lists the kinds.
 *
 * Node-only facets of a kind sit beside its format.ts: live.ts (inspection of a live task: the state or a typed
 * reason; the restore step) and criu.ts (the CRIU mapping). This file and every format.ts import no Node module:
 * they are part of the browser bundle.
 */
import type { Fields, RecordDef } from '../schema.js';
import type { OpenFile, Task, Thread } from '../model.js';

/** The record a kind's record hangs under. */
export type OwnerName = 'task' | 'thread' | 'fd';
export interface Owners {
  task: Task;
  thread: Thread;
  fd: OpenFile;
}

/** Refuse the record being decoded (BAD_RECORD at its offset, with the kind's name). */
export type Bad = (why: string) => never;

/** One item of a difference list (crimg diff). */
export interface Difference {
  what: string;
  a: unknown;
  b: unknown;
}

export interface KindFormat<O extends OwnerName = OwnerName, V = unknown> {
  /** The property of the owner that holds the value (undefined: not recorded); also the key in `show --json`. */
  readonly key: string;
  /** How `diff` and `show` name it. */
  readonly label: string;
  readonly owner: O;
  /** The record's definition: kind number, name, fields (the schema takes it from here). */
  readonly record: RecordDef;
  /** Whether a value is written at all (e.g. an empty lock list is not). Default: always. */
  present?(v: V): boolean;
  /** The record's fields from the value. */
  encode(v: V, owner: Owners[O]): Fields;
  /** The value from the record's decoded fields, checked; `bad` refuses the record. */
  decode(f: Fields, owner: Owners[O], bad: Bad): V;
  /** Checks across the owners of one task, once the whole task is read (a pipe's bytes on its lowest fd, both
   *  sockets of a pair, the targets of an epoll). `bad(owner, why)` refuses that owner's record. */
  checkTask?(task: Task, values: [Owners[O], V][], bad: (owner: Owners[O], why: string) => never): void;
  /** The value as `show --json` gives it (default: as it is). */
  json?(v: V): unknown;
  /** The lines `show` prints for it, without indentation. */
  text(v: V): string[];
  /** Differences between two values, either possibly not recorded (default: one difference when they are not
   *  equal as JSON, giving both). */
  diff?(a: V | undefined, b: V | undefined, what: string): Difference[];
}

/** Any kind, for registries. */
// biome-ignore lint/suspicious/noExplicitAny: a registry holds kinds of every value type
export type AnyKind = KindFormat<OwnerName, any>;

/** The value of kind `k` on `owner`, or undefined. */
export function kindValue<O extends OwnerName, V>(k: KindFormat<O, V>, owner: Owners[O]): V | undefined {
  return (owner as unknown as Record<string, V | undefined>)[k.key];
}

/** Set the value of kind `k` on `owner`. */
export function setValue<O extends OwnerName, V>(k: KindFormat<O, V>, owner: Owners[O], v: V): void {
  (owner as unknown as Record<string, V>)[k.key] = v;
}

/** Define a kind (typing help only). */
export function defineKind<O extends OwnerName, V>(k: KindFormat<O, V>): KindFormat<O, V> {
  return k;
}
