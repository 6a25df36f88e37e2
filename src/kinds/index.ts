/**
 * The registry of kinds of saved state. The order of each owner's kinds here is the order of their records in an
 * image (the schema's grammar, the writer's emission order and the reader's walk all come from it): appending a
 * kind is compatible; reordering is a format change.
 */
import type { AnyKind, OwnerName } from './kind.js';
import { sigacts } from './sigacts/format.js';
import { itimers } from './itimers/format.js';
import { posixTimers } from './posix-timers/format.js';
import { procAttrs } from './proc-attrs/format.js';
import { futex } from './futex/format.js';
import { sigaltstack } from './sigaltstack/format.js';
import { flocks } from './flocks/format.js';
import { anonFd } from './anon-fd/format.js';
import { pipe } from './pipe/format.js';
import { inotify } from './inotify/format.js';
import { tcpListen } from './tcp-listen/format.js';
import { unixPair } from './unix-pair/format.js';

export const KINDS: readonly AnyKind[] = [
  sigacts,
  itimers,
  posixTimers,
  procAttrs, // TASK
  futex,
  sigaltstack, // THREAD
  flocks,
  anonFd,
  pipe,
  inotify,
  tcpListen,
  unixPair, // FD
];

/** The kinds under each owner, in image order. */
export const KINDS_OF: Readonly<Record<OwnerName, readonly AnyKind[]>> = {
  task: KINDS.filter((k) => k.owner === 'task'),
  thread: KINDS.filter((k) => k.owner === 'thread'),
  fd: KINDS.filter((k) => k.owner === 'fd'),
};

export type { AnyKind, KindFormat, OwnerName, Owners, Difference } from './kind.js';
