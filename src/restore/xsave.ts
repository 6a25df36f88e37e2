/**
 * The NT_X86_XSTATE buffer PTRACE_SETREGSET takes: a whole standard-form XSAVE
 * area of exactly the size the kernel reports for this CPU, in this CPU's
 * layout. The image keeps the legacy region as the thread's FXSAVE area and the
 * rest in the Intel layout (see src/cpu/xsave.ts); components move to the host's
 * offsets here.
 */
import type { Thread } from '../model.js';
import { XSTATE_XCR0_OFFSET, XSAVE_LEGACY_BYTES, extXstateBv, fromIntelExt, guessLayout, xstateXcr0 } from '../cpu/xsave.js';

/** XCR0 the kernel reports in bytes 464..471 of an NT_X86_XSTATE buffer. */
export { xstateXcr0 };

/** XSTATE_BV of the image's extended state (0 when absent). */
export function imageXstateBv(th: Thread): bigint {
  return th.xstate ? extXstateBv(th.xstate.ext) : 0n;
}

/**
 * Build the SETREGSET buffer for thread `th` from `host`, a buffer the kernel returned for a thread of this
 * machine (its size and its software bytes 464..511 are kept).
 */
export function buildXstate(host: Uint8Array, th: Thread): Uint8Array {
  const size = host.length;
  const hostXcr0 = xstateXcr0(host);
  const out = new Uint8Array(size);
  out.set(th.fpu.subarray(0, XSTATE_XCR0_OFFSET), 0);
  out.set(host.subarray(XSTATE_XCR0_OFFSET, XSAVE_LEGACY_BYTES), XSTATE_XCR0_OFFSET);
  fromIntelExt(out, guessLayout(hostXcr0, size), hostXcr0, th.xstate?.ext ?? null, th.xstate?.xcr0 ?? 0n);
  return out;
}
