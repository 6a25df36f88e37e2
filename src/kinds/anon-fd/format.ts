/** eventfd, timerfd, signalfd and epoll instances: the ANON_FD record under FD. */
import { FdKind } from '../../model.js';
import { defineKind } from '../kind.js';

/** Anonymous-inode files crimg saves whole (see ./live.ts). */
export const ANON_KIND = { EVENTFD: 1, TIMERFD: 2, SIGNALFD: 3, EPOLL: 4 } as const;

/** The state of an anonymous-inode file, as the ANON_FD record holds it: eventfd (count, semaphore 0/1), timerfd
 *  (clock, settime flags, interval ns, remaining ns, ticks), signalfd (mask), epoll ((fd, events, data) triples). */
export interface AnonFd {
  kind: number;
  values: bigint[];
}

const NAMES = ['', 'eventfd', 'timerfd', 'signalfd', 'epoll'];
/** Number of values of each kind but epoll. */
const WANT: Record<number, number> = { [ANON_KIND.EVENTFD]: 2, [ANON_KIND.TIMERFD]: 5, [ANON_KIND.SIGNALFD]: 1 };

export const anonFd = defineKind<'fd', AnonFd>({
  key: 'anon',
  label: 'anon',
  owner: 'fd',
  record: {
    kind: 0x0403,
    name: 'ANON_FD',
    parent: 0x0401,
    doc: 'Optional, on an FD of kind 2 (other): the state of an eventfd, timerfd, signalfd or epoll instance (absent: another kind of file).',
    fields: [
      ['anonKind', 'u32', '1 eventfd, 2 timerfd, 3 signalfd, 4 epoll'],
      ['reserved', 'u32', '0'],
      [
        'values',
        'u64[]',
        'eventfd: count, semaphore (0/1); timerfd: clock, settime flags, interval ns, remaining ns, ticks (expirations not read); '
          + "signalfd: signal mask; epoll: (fd, events, data) triples, its interest list (each fd one of the task's, not an epoll)",
      ],
    ],
  },
  encode: (v) => ({ anonKind: v.kind, reserved: 0, values: v.values }),
  decode(f, file, bad) {
    const kind = f.anonKind as number,
      v = f.values as bigint[];
    if (f.reserved !== 0) bad('reserved field not zero');
    if (file.kind !== FdKind.OTHER) bad(`fd ${file.fd} is a regular file or directory`);
    const want = WANT[kind];
    if (kind === ANON_KIND.EPOLL) {
      if (v.length % 3) bad(`fd ${file.fd}: ${v.length} values are not (fd, events, data) triples`);
      for (let i = 0; i < v.length; i += 3)
        if (v[i]! > 0x7fffffffn || v[i + 1]! > 0xffffffffn) bad(`fd ${file.fd}: watch of fd ${v[i]} with events ${v[i + 1]}`);
    } else if (want === undefined) {
      bad(`fd ${file.fd}: anonymous file kind ${kind} is none of eventfd, timerfd, signalfd, epoll`);
    } else if (v.length !== want) {
      bad(`fd ${file.fd}: ${v.length} values for a kind ${kind} file, expected ${want}`);
    }
    if (kind === ANON_KIND.EVENTFD && (v[0]! >= 0xffffffffffffffffn || v[1]! > 1n))
      bad(`fd ${file.fd}: eventfd count ${v[0]} / semaphore ${v[1]}`);
    if (kind === ANON_KIND.TIMERFD && (![0n, 1n, 7n, 8n, 9n].includes(v[0]!) || v[1]! > 3n))
      bad(`fd ${file.fd}: timerfd clock ${v[0]} / flags ${v[1]}`);
    return { kind, values: v };
  },
  checkTask(task, values, bad) {
    // an epoll watches fds of the task, none of them an epoll
    for (const [file, a] of values) {
      if (a.kind !== ANON_KIND.EPOLL) continue;
      for (let i = 0; i < a.values.length; i += 3) {
        const t = task.files.find((x) => BigInt(x.fd) === a.values[i]);
        if (!t) bad(file, `epoll fd ${file.fd} watches fd ${a.values[i]}, which the task does not have`);
        else if (t.anon?.kind === ANON_KIND.EPOLL) bad(file, `epoll fd ${file.fd} watches another epoll (fd ${t.fd})`);
      }
    }
  },
  json: (v) => ({ kind: NAMES[v.kind] ?? v.kind, values: v.values }),
  text: (v) => [`${NAMES[v.kind] ?? 'anon'} ${v.values.map((x) => x.toString()).join(' ')}`],
});
