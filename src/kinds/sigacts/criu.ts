/**
 * SIGACTS <-> task_core_entry.sigactions: one sa_entry per signal 1..64 except SIGKILL and SIGSTOP (SIG_SLOTS),
 * in order; SIG_DFL is an entry of zeros. Import keeps the entries whose handler is not 0.
 */
import type { CriuKindMap } from '../../criu/kind-map.js';
import type { Msg } from '../../criu/pb.js';
import { SIG_SLOTS } from '../../criu/layout.js';
import { arr, u64 } from '../../criu/fields.js';
import type { SigAction } from '../../model.js';

const SIG_DFL: Msg = { sigaction: 0n, flags: 0n, restorer: 0n, mask: 0n };

export const criuMap: CriuKindMap<SigAction[], 'task'> = {
  record: 'SIGACTS',
  owner: 'task',
  get: (t) => t.sigactions,
  set: (t, v) => {
    t.sigactions = v;
  },
  toCriu(actions, { tc }) {
    const by = new Map(actions.map((a) => [a.sig, a]));
    tc.sigactions = SIG_SLOTS.map((sig) => {
      const a = by.get(sig);
      return a ? { sigaction: a.handler, flags: a.flags, restorer: a.restorer, mask: a.mask } : { ...SIG_DFL };
    });
  },
  fromCriu({ tc }) {
    const sas = arr<Msg>(tc.sigactions);
    if (!sas.length) return undefined;
    const out: SigAction[] = [];
    sas.slice(0, SIG_SLOTS.length).forEach((a, j) => {
      const handler = u64(a.sigaction);
      if (handler !== 0n) out.push({ sig: SIG_SLOTS[j]!, handler, flags: u64(a.flags), restorer: u64(a.restorer), mask: u64(a.mask) });
    });
    return out;
  },
};
