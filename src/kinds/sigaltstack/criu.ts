/** SIGALTSTACK <-> thread_core.sas (thread_sas_entry: ss_sp, ss_size, ss_flags as a u32). */
import type { CriuKindMap } from '../../criu/kind-map.js';
import type { Msg } from '../../criu/pb.js';
import { num, u64 } from '../../criu/fields.js';
import type { SigAltStack } from '../../model.js';

export const criuMap: CriuKindMap<SigAltStack, 'thread'> = {
  record: 'SIGALTSTACK',
  owner: 'thread',
  get: (th) => th.sigaltstack,
  set: (th, v) => {
    th.sigaltstack = v;
  },
  toCriu(ss, { core }) {
    core.sas = { ss_sp: ss.sp, ss_size: ss.size, ss_flags: ss.flags >>> 0 };
  },
  fromCriu({ core }) {
    const sas = core?.sas as Msg | undefined;
    return sas ? { sp: u64(sas.ss_sp ?? 0n), size: u64(sas.ss_size ?? 0n), flags: num(sas.ss_flags ?? 0) >>> 0 } : undefined;
  },
};
