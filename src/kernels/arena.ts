/**
 * Carves the kernels' staging area into regions and hands out hash slots, so
 * that several writers and readers can share one WebAssembly instance.
 */
import { CrimgError } from '../errors.js';
import { type Kernels, NSLOTS, STAGING_BASE } from './api.js';

interface ArenaState {
  used: [number, number][];
  slots: boolean[];
}
const states = new WeakMap<Kernels, ArenaState>();

function state(k: Kernels): ArenaState {
  let s = states.get(k);
  if (!s) {
    s = { used: [], slots: new Array(NSLOTS).fill(false) };
    states.set(k, s);
  }
  return s;
}

const ALIGN = 64 * 1024;

/** Claim `bytes` of staging memory; returns an absolute pointer. Release with releaseRegion. */
export function claimRegion(k: Kernels, bytes: number): number {
  const s = state(k);
  const size = Math.ceil(Math.max(bytes, 1) / ALIGN) * ALIGN;
  s.used.sort((a, b) => a[0] - b[0]);
  let at = STAGING_BASE;
  for (const [p, n] of s.used) {
    if (at + size <= p) break;
    at = Math.max(at, p + n);
  }
  k.staging(at - STAGING_BASE + size);
  s.used.push([at, size]);
  return at;
}

export function releaseRegion(k: Kernels, ptr: number): void {
  const s = state(k);
  const i = s.used.findIndex(([p]) => p === ptr);
  if (i >= 0) s.used.splice(i, 1);
}

export function claimSlot(k: Kernels): number {
  const s = state(k);
  const i = s.slots.indexOf(false);
  if (i < 0) throw new CrimgError('LIMIT_EXCEEDED', `more than ${NSLOTS} concurrent streams in one kernels instance`);
  s.slots[i] = true;
  k.xxh3Init(i);
  return i;
}

export function releaseSlot(k: Kernels, slot: number): void {
  state(k).slots[slot] = false;
}
