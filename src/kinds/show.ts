/** Small helpers the kinds' text views share. */

export const hex = (v: bigint | number): string => `0x${BigInt(v).toString(16)}`;

const SIG_NAMES = [
  'HUP',
  'INT',
  'QUIT',
  'ILL',
  'TRAP',
  'ABRT',
  'BUS',
  'FPE',
  'KILL',
  'USR1',
  'SEGV',
  'USR2',
  'PIPE',
  'ALRM',
  'TERM',
  'STKFLT',
  'CHLD',
  'CONT',
  'STOP',
  'TSTP',
  'TTIN',
  'TTOU',
  'URG',
  'XCPU',
  'XFSZ',
  'VTALRM',
  'PROF',
  'WINCH',
  'IO',
  'PWR',
  'SYS',
];

/** SIGUSR1, SIGRTMIN+3 ... */
export function sigName(n: number): string {
  return n >= 1 && n <= SIG_NAMES.length ? `SIG${SIG_NAMES[n - 1]}` : n >= 34 ? `SIGRTMIN+${n - 34}` : `signal ${n}`;
}
