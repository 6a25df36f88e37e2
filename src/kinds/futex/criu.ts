/**
 * FUTEX <-> thread_info.clear_tid_addr (clear_child_tid) and thread_core futex_rla, futex_rla_len (the robust
 * futex list). CRIU requires the three fields: a thread that does not record its futex state has them 0, and
 * import takes all three 0 as not recorded.
 */
import type { CriuKindMap } from '../../criu/kind-map.js';
import { num, u64 } from '../../criu/fields.js';
import type { ThreadFutex } from '../../model.js';

export const criuMap: CriuKindMap<ThreadFutex, 'thread'> = {
  record: 'FUTEX',
  owner: 'thread',
  get: (th) => th.futex,
  set: (th, v) => {
    th.futex = v;
  },
  toCriu(fx, { info, core }) {
    info.clear_tid_addr = fx.clearChildTid;
    core.futex_rla = fx.robustHead;
    core.futex_rla_len = Number(fx.robustLen);
  },
  fromCriu({ info, core }) {
    const clearChildTid = u64(info.clear_tid_addr);
    const robustHead = core ? u64(core.futex_rla) : 0n,
      robustLen = core ? BigInt(num(core.futex_rla_len)) : 0n;
    return clearChildTid || robustHead || robustLen ? { clearChildTid, robustHead, robustLen } : undefined;
  },
};
