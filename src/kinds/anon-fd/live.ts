/**
 * Anonymous-inode files whose whole state the kernel shows: eventfd, timerfd,
 * signalfd and epoll. Checkpoint (from /proc/PID/fdinfo) and restart (system
 * calls run in the new task) of each, side by side.
 *
 *  kind      fdinfo lines                                   values in the image (ANON_FD record)
 *  eventfd   eventfd-count (hex), eventfd-semaphore        count, semaphore (0/1)
 *  timerfd   clockid, ticks, settime flags, it_value,      clock, settime flags, interval ns, remaining ns,
 *            it_interval ((sec, nsec), remaining time)     ticks (expirations not read yet)
 *  signalfd  sigmask (hex)                                 mask
 *  epoll     tfd: N events: E data: D ... ino: I          (fd, events, data) triples: the interest list
 *
 * The file flags (O_NONBLOCK) and close-on-exec are the FD record's. Restart:
 * eventfd2(count, flags); timerfd_create, timerfd_settime with the remaining
 * time (relative), and TFD_IOC_SET_TICKS for expirations not read; signalfd4;
 * epoll_create1 and one EPOLL_CTL_ADD per watched fd, after every other file is
 * in place. What cannot be rebuilt faithfully is a reason (EVENTFD ... EPOLL): an epoll
 * watching a file that is no longer at the fd it was added with, or another
 * epoll; a timerfd with TFD_TIMER_CANCEL_ON_SET.
 */
import type { NocrCode } from '../live.js';
import { ANON_KIND, type AnonFd, type OpenFile } from '../../model.js';
import type { FdInfo } from '../../os/proc.js';
import { O_CLOEXEC, O_NONBLOCK } from '../../os/consts.js';
import { SYS } from '../../os/syscalls.js';
import type { TaskCall, TaskScratch } from '../../os/taskcall.js';
import type { LiveFdKind, RestoreCalls } from '../live.js';
import { anonFd as kindFormat } from './format.js';

const TFD_TIMER_CANCEL_ON_SET = 2;

/** The ANON_KIND of an fd's link (anon_inode:[eventfd] ...), or 0. */
function anonKindOf(link: string): number {
  if (!link.startsWith('anon_inode:')) return 0;
  if (link.includes('[eventfd]')) return ANON_KIND.EVENTFD;
  if (link.includes('[timerfd]')) return ANON_KIND.TIMERFD;
  if (link.includes('[signalfd]')) return ANON_KIND.SIGNALFD;
  if (link.includes('[eventpoll]')) return ANON_KIND.EPOLL;
  return 0;
}

const hex = (s: string | undefined): bigint | null => (s !== undefined && /^[0-9a-fA-F]+$/.test(s) ? BigInt(`0x${s}`) : null);
const dec = (s: string | undefined): bigint | null => (s !== undefined && /^\d+$/.test(s) ? BigInt(s) : null);
/** "(sec, nsec)" -> ns */
function pairNs(s: string | undefined): bigint | null {
  const m = s ? /^\((\d+),\s*(\d+)\)$/.exec(s) : null;
  return m ? BigInt(m[1]!) * 1_000_000_000n + BigInt(m[2]!) : null;
}

// ------------------------------------------------------------------ checkpoint

/**
 * The state of an eventfd, timerfd, signalfd or epoll fd from its fdinfo; `problem` when it cannot be rebuilt
 * faithfully; null for other files. `fds` is the task's whole fd table (an epoll's watched files must still be at
 * the fds they were added with).
 */
function anonState(f: FdInfo, fds: readonly FdInfo[]): { anon: AnonFd } | { problem: string } | null {
  const kind = anonKindOf(f.link);
  const x = f.extra;
  switch (kind) {
    case ANON_KIND.EVENTFD: {
      const count = hex(x.get('eventfd-count'));
      if (count === null) return { problem: 'its counter is not in fdinfo' };
      return { anon: { kind, values: [count, x.get('eventfd-semaphore') === '1' ? 1n : 0n] } };
    }
    case ANON_KIND.TIMERFD: {
      const clock = dec(x.get('clockid')),
        ticks = dec(x.get('ticks')),
        flags = dec(x.get('settime flags')?.replace(/^0+(?=\d)/, ''));
      const value = pairNs(x.get('it_value')),
        interval = pairNs(x.get('it_interval'));
      if (clock === null || ticks === null || flags === null || value === null || interval === null)
        return { problem: 'its timer is not in fdinfo' };
      if (Number(flags) & TFD_TIMER_CANCEL_ON_SET)
        return { problem: 'it is armed with TFD_TIMER_CANCEL_ON_SET, which crimg cannot set up again' };
      return { anon: { kind, values: [clock, flags, interval, value, ticks] } };
    }
    case ANON_KIND.SIGNALFD: {
      const mask = hex(x.get('sigmask'));
      if (mask === null) return { problem: 'its signal mask is not in fdinfo' };
      return { anon: { kind, values: [mask] } };
    }
    case ANON_KIND.EPOLL: {
      const watches: [bigint, bigint, bigint][] = [];
      for (const line of f.tfds) {
        const m = /^(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*\d+\s+ino:\s*([0-9a-f]+)/.exec(line);
        if (!m) return { problem: `an entry of its interest list cannot be read (${line})` };
        const tfd = Number(m[1]);
        const target = fds.find((t) => t.fd === tfd);
        if (!target?.stat || target.stat.ino !== BigInt(`0x${m[4]}`)) {
          return { problem: `it watches a file that is no longer at fd ${tfd} (closed or replaced after it was added)` };
        }
        if (anonKindOf(target.link) === ANON_KIND.EPOLL) return { problem: `it watches another epoll instance (fd ${tfd})` };
        watches.push([BigInt(tfd), BigInt(`0x${m[2]}`), BigInt(`0x${m[3]}`)]);
      }
      // by fd (the kernel lists them in the order of its tree of files)
      return { anon: { kind, values: watches.sort((a, b) => (a[0] < b[0] ? -1 : 1)).flat() } };
    }
    default:
      return null;
  }
}

/** The reason code of each kind when it cannot be saved. */
const CODES: Record<number, NocrCode> = {
  [ANON_KIND.EVENTFD]: 'EVENTFD',
  [ANON_KIND.TIMERFD]: 'TIMERFD',
  [ANON_KIND.SIGNALFD]: 'SIGNALFD',
  [ANON_KIND.EPOLL]: 'EPOLL',
};

export const anonFdLive: LiveFdKind<AnonFd> = {
  scope: 'fd',
  format: kindFormat,
  name: 'anon-fd',
  inspect(f, ctx) {
    const st = anonState(f, ctx.fds);
    if (!st) return null;
    if ('problem' in st) return { reason: { code: CODES[anonKindOf(f.link)]!, text: `fd ${f.fd} is ${f.link}: ${st.problem}` } };
    return { state: st.anon };
  },
  restore: [
    { when: 'fd', has: (f) => f.anon !== undefined && f.anon.kind !== ANON_KIND.EPOLL, run: restoreAnonFd },
    { when: 'fd', late: true, has: (f) => f.anon?.kind === ANON_KIND.EPOLL, run: restoreAnonFd },
  ],
};

// ------------------------------------------------------------------ restart

const TFD_IOC_SET_TICKS = 0x40085400,
  EPOLL_CTL_ADD = 1;

/**
 * Create the object of anonymous-inode file `f` in the task; returns the fd the kernel gave it (the caller moves it
 * to f.fd). An epoll's watched fds must already be in place.
 */
export function createAnon(f: OpenFile, call: TaskCall, scratch: TaskScratch): number {
  const a = f.anon!;
  const v = a.values;
  const nonblock = f.flags & O_NONBLOCK;
  const cloexec = f.cloexec ? O_CLOEXEC : 0;
  switch (a.kind) {
    case ANON_KIND.EVENTFD:
      return Number(call(SYS.eventfd2, [v[0]!, nonblock | cloexec | (v[1] ? 1 : 0)], 'eventfd2'));
    case ANON_KIND.TIMERFD: {
      const fd = Number(call(SYS.timerfd_create, [v[0]!, nonblock | cloexec], 'timerfd_create'));
      const [interval, value, ticks] = [v[2]!, v[3]!, v[4]!];
      if (value || interval) {
        const its = new Uint8Array(32);
        const dv = new DataView(its.buffer);
        const ns = 1_000_000_000n,
          rem = value || interval; // remaining 0 with an interval: a new period
        dv.setBigUint64(0, interval / ns, true);
        dv.setBigUint64(8, interval % ns, true);
        dv.setBigUint64(16, rem / ns, true);
        dv.setBigUint64(24, rem % ns, true);
        call(SYS.timerfd_settime, [fd, 0, scratch(its), 0], 'timerfd_settime');
      }
      if (ticks) call(SYS.ioctl, [fd, TFD_IOC_SET_TICKS, scratch(new Uint8Array(new BigUint64Array([ticks]).buffer))], 'TFD_IOC_SET_TICKS');
      return fd;
    }
    case ANON_KIND.SIGNALFD:
      return Number(
        call(SYS.signalfd4, [-1, scratch(new Uint8Array(new BigUint64Array([v[0]!]).buffer)), 8, nonblock | cloexec], 'signalfd4'),
      );
    case ANON_KIND.EPOLL: {
      const ep = Number(call(SYS.epoll_create1, [cloexec], 'epoll_create1'));
      for (let i = 0; i < v.length; i += 3) {
        const ev = new Uint8Array(12); // struct epoll_event is packed on x86_64
        const dv = new DataView(ev.buffer);
        dv.setUint32(0, Number(v[i + 1]!), true);
        dv.setBigUint64(4, v[i + 2]!, true);
        call(SYS.epoll_ctl, [ep, EPOLL_CTL_ADD, v[i]!, scratch(ev)], `EPOLL_CTL_ADD fd ${v[i]}`);
      }
      return ep;
    }
    default:
      throw new Error(`unknown anonymous-inode file kind ${a.kind}`);
  }
}

/** An eventfd, timerfd, signalfd or epoll (late: after every other fd), made and moved to its fd. */
function restoreAnonFd(rc: RestoreCalls, f: OpenFile): void {
  const at = `fd ${f.fd} ${f.path}`;
  rc.placeFd(
    f,
    at,
    rc.step('create file', at, () => createAnon(f, rc.call, rc.scratch)),
  );
}
