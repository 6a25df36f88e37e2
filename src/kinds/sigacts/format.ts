/** Signal dispositions other than SIG_DFL (rt_sigaction): the SIGACTS record under TASK. */
import { type Difference, defineKind } from '../kind.js';
import { hex, sigName } from '../show.js';

/** A signal disposition other than SIG_DFL: the kernel's struct sigaction for rt_sigaction(2). */
export interface SigAction {
  sig: number;
  /** Handler address, or 1 for SIG_IGN. */
  handler: bigint;
  /** SA_* flags (SA_RESTORER, SA_SIGINFO, SA_RESTART, SA_ONSTACK, ...). */
  flags: bigint;
  restorer: bigint;
  /** Signals blocked while the handler runs (bit n-1 = signal n). */
  mask: bigint;
}

interface Row {
  signal: bigint;
  handler: bigint;
  flags: bigint;
  restorer: bigint;
  mask: bigint;
}

export const sigacts = defineKind<'task', SigAction[]>({
  key: 'sigactions',
  label: 'sigactions',
  owner: 'task',
  record: {
    kind: 0x0106,
    name: 'SIGACTS',
    parent: 0x0101,
    doc: 'Optional: the signal dispositions other than SIG_DFL (absent: not recorded).',
    fields: [['actions', 'u64[]', 'by ascending signal; handler 1 = SIG_IGN', ['signal', 'handler', 'flags', 'restorer', 'mask']]],
  },
  encode: (v) => ({
    actions: v.map((a) => ({ signal: BigInt(a.sig), handler: a.handler, flags: a.flags, restorer: a.restorer, mask: a.mask })),
  }),
  decode(f, _task, bad) {
    const out: SigAction[] = [];
    for (const r of f.actions as Row[]) {
      if (r.signal < 1n || r.signal > 64n) bad(`signal ${r.signal} out of range 1..64`);
      const sig = Number(r.signal);
      if (out.length && sig <= out[out.length - 1]!.sig) bad(`signal ${sig} out of order`);
      if (r.handler === 0n) bad(`signal ${sig} recorded with SIG_DFL`);
      out.push({ sig, handler: r.handler, flags: r.flags, restorer: r.restorer, mask: r.mask });
    }
    return out;
  },
  json: (v) => v.map((a) => ({ sig: a.sig, name: sigName(a.sig), handler: a.handler, flags: a.flags, restorer: a.restorer, mask: a.mask })),
  text(v) {
    const out: string[] = [];
    const ign = v.filter((a) => a.handler === 1n).map((a) => sigName(a.sig));
    if (ign.length) out.push(`signals ignored: ${ign.join(' ')}`);
    for (const a of v)
      if (a.handler !== 1n)
        out.push(
          `signal ${sigName(a.sig)} handler ${hex(a.handler)} flags ${hex(a.flags)} restorer ${hex(a.restorer)} mask ${hex(a.mask)}`,
        );
    return out;
  },
  diff(a, b, what) {
    if (!a || !b) return !a === !b ? [] : [{ what, a: a ? 'recorded' : 'not recorded', b: b ? 'recorded' : 'not recorded' }];
    const out: Difference[] = [];
    const sa = new Map(a.map((x) => [x.sig, x]));
    const sb = new Map(b.map((x) => [x.sig, x]));
    for (const sig of [...new Set([...sa.keys(), ...sb.keys()])].sort((x, y) => x - y)) {
      const x = sa.get(sig),
        y = sb.get(sig);
      const w = what.replace(/sigactions$/, `sigaction ${sigName(sig)}`);
      if (!x || !y) {
        out.push({ what: w, a: x ? 'set' : 'SIG_DFL', b: y ? 'set' : 'SIG_DFL' });
        continue;
      }
      for (const k of ['handler', 'flags', 'restorer', 'mask'] as const)
        if (x[k] !== y[k]) out.push({ what: `${w}.${k}`, a: x[k], b: y[k] });
    }
    return out;
  },
});
