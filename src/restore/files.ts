/**
 * The task's open files (step 5 of restore.ts, after the task attributes): the stub's fds closed (but those
 * --inherit-stdio keeps and the tree's pipes), then in fd order each file reopened by path at its flags and position,
 * or made by its kind (the restore step in its module, run by kind-steps.ts: pipes, socket pairs, listeners,
 * inotify, eventfd / timerfd / signalfd; epoll last), each moved to its fd number.
 */
import { FdKind, type OpenFile } from '../model.js';
import { readFds } from '../os/proc.js';
import { type RestoreCtx, placeFd, str } from './ctx.js';
import { NR } from './inject.js';
import { kindSteps } from './kind-steps.js';
import { AT_FDCWD, O_ACCMODE, O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_NOCTTY, O_TRUNC } from '../os/consts.js';

export function restoreFiles(ctx: RestoreCtx): void {
  const { inherit, sorted, treePipes } = ctx.fds;
  const have = ctx.step('list stub fds', '', () => readFds(ctx.pid).map((f) => f.fd));
  const keep = new Set([...treePipes.values()].flat()); // pipes between tasks of the tree: placed from these, then closed
  const kinds = kindSteps('fd');
  ctx.batch(
    'close stub fd',
    have.filter((fd) => !inherit.has(fd) && !keep.has(fd)).map((fd) => ({ nr: NR.close, args: [fd], at: `fd ${fd}` })),
  );
  for (const f of sorted) {
    if (inherit.has(f.fd)) continue;
    const kind = kinds.find((k) => k.has(f));
    if (kind) {
      if (!kind.late) kind.run(ctx, f);
      continue;
    }
    reopenFile(ctx, f);
  }
  for (const f of sorted) {
    if (inherit.has(f.fd)) continue;
    const kind = kinds.find((k) => k.has(f));
    if (kind?.late) kind.run(ctx, f);
  }
  if (keep.size)
    ctx.batch(
      'close tree pipes',
      [...keep].map((fd) => ({ nr: NR.close, args: [fd], at: `fd ${fd}` })),
    );
}

/** A file crimg reopens by path (regular files, directories, device files), at its position. */
function reopenFile(ctx: RestoreCtx, f: OpenFile): void {
  const at = `fd ${f.fd} ${f.path}`;
  const dir = f.kind === FdKind.DIRECTORY;
  let flags = (f.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC)) | O_NOCTTY;
  if (dir) flags = (flags & ~O_ACCMODE) | O_DIRECTORY;
  if (f.cloexec) flags |= O_CLOEXEC;
  const got = ctx.step('open file', at, () => Number(ctx.inj.call(NR.openat, [AT_FDCWD, str(ctx, f.path), flags, 0], f.path)));
  placeFd(ctx, f, at, got);
  if (f.kind === FdKind.REGULAR || (dir && f.pos !== 0n)) {
    ctx.step('seek file', `${at} pos ${f.pos}`, () => ctx.inj.call(NR.lseek, [f.fd, f.pos, 0]));
  }
}
