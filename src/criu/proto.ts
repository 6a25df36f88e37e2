/**
 * The CRIU image interface crimg uses: file magics (criu/include/magic.h) and the
 * protobuf messages and fields (images/*.proto of checkpoint-restore/criu, checked
 * against CRIU 3.17.1's compiled descriptors). Field numbers and types are the
 * interface: both the encoder and the decoder in ./pb.ts work from this one table.
 * Only the messages and fields crimg reads or writes are listed; the decoder skips
 * the others.
 */

export type FieldType =
  | 'uint32'
  | 'int32'
  | 'sint32'
  | 'uint64'
  | 'int64'
  | 'sint64'
  | 'fixed64'
  | 'bool'
  | 'enum'
  | 'string'
  | 'bytes'
  | 'message';
export type Label = 'required' | 'optional' | 'repeated';

export interface FieldDef {
  num: number;
  name: string;
  type: FieldType;
  label: Label;
  /** Message type of a 'message' field. */
  msg?: MessageName;
}

type Row = [num: number, label: Label, type: FieldType, name: string, msg?: string];

const req = 'required',
  opt = 'optional',
  rep = 'repeated';

const TABLE = {
  // inventory.proto
  inventory_entry: [
    [1, req, 'uint32', 'img_version'],
    [2, opt, 'bool', 'fdinfo_per_id'],
    [3, opt, 'message', 'root_ids', 'task_kobj_ids_entry'],
    [4, opt, 'bool', 'ns_per_id'],
    [5, opt, 'uint32', 'root_cg_set'],
    [6, opt, 'enum', 'lsmtype'],
    [8, opt, 'uint64', 'dump_uptime'],
  ],
  // core.proto
  task_kobj_ids_entry: [
    [1, req, 'uint32', 'vm_id'],
    [2, req, 'uint32', 'files_id'],
    [3, req, 'uint32', 'fs_id'],
    [4, req, 'uint32', 'sighand_id'],
    [5, opt, 'uint32', 'pid_ns_id'],
    [6, opt, 'uint32', 'net_ns_id'],
    [7, opt, 'uint32', 'ipc_ns_id'],
    [8, opt, 'uint32', 'uts_ns_id'],
    [9, opt, 'uint32', 'mnt_ns_id'],
    [10, opt, 'uint32', 'user_ns_id'],
    [11, opt, 'uint32', 'cgroup_ns_id'],
    [12, opt, 'uint32', 'time_ns_id'],
  ],
  // pstree.proto
  pstree_entry: [
    [1, req, 'uint32', 'pid'],
    [2, req, 'uint32', 'ppid'],
    [3, req, 'uint32', 'pgid'],
    [4, req, 'uint32', 'sid'],
    [5, rep, 'uint32', 'threads'],
  ],
  core_entry: [
    [1, req, 'enum', 'mtype'],
    [2, opt, 'message', 'thread_info', 'thread_info_x86'],
    [3, opt, 'message', 'tc', 'task_core_entry'],
    [4, opt, 'message', 'ids', 'task_kobj_ids_entry'],
    [5, opt, 'message', 'thread_core', 'thread_core_entry'],
  ],
  // core-x86.proto
  thread_info_x86: [
    [1, req, 'uint64', 'clear_tid_addr'],
    [2, req, 'message', 'gpregs', 'user_x86_regs_entry'],
    [3, req, 'message', 'fpregs', 'user_x86_fpregs_entry'],
  ],
  user_x86_regs_entry: [
    [1, req, 'uint64', 'r15'],
    [2, req, 'uint64', 'r14'],
    [3, req, 'uint64', 'r13'],
    [4, req, 'uint64', 'r12'],
    [5, req, 'uint64', 'bp'],
    [6, req, 'uint64', 'bx'],
    [7, req, 'uint64', 'r11'],
    [8, req, 'uint64', 'r10'],
    [9, req, 'uint64', 'r9'],
    [10, req, 'uint64', 'r8'],
    [11, req, 'uint64', 'ax'],
    [12, req, 'uint64', 'cx'],
    [13, req, 'uint64', 'dx'],
    [14, req, 'uint64', 'si'],
    [15, req, 'uint64', 'di'],
    [16, req, 'uint64', 'orig_ax'],
    [17, req, 'uint64', 'ip'],
    [18, req, 'uint64', 'cs'],
    [19, req, 'uint64', 'flags'],
    [20, req, 'uint64', 'sp'],
    [21, req, 'uint64', 'ss'],
    [22, req, 'uint64', 'fs_base'],
    [23, req, 'uint64', 'gs_base'],
    [24, req, 'uint64', 'ds'],
    [25, req, 'uint64', 'es'],
    [26, req, 'uint64', 'fs'],
    [27, req, 'uint64', 'gs'],
    [28, opt, 'enum', 'mode'],
  ],
  user_x86_fpregs_entry: [
    [1, req, 'uint32', 'cwd'],
    [2, req, 'uint32', 'swd'],
    [3, req, 'uint32', 'twd'],
    [4, req, 'uint32', 'fop'],
    [5, req, 'uint64', 'rip'],
    [6, req, 'uint64', 'rdp'],
    [7, req, 'uint32', 'mxcsr'],
    [8, req, 'uint32', 'mxcsr_mask'],
    [9, rep, 'uint32', 'st_space'],
    [10, rep, 'uint32', 'xmm_space'],
    [11, rep, 'uint32', 'padding'],
    [13, opt, 'message', 'xsave', 'user_x86_xsave_entry'],
  ],
  user_x86_xsave_entry: [
    [1, req, 'uint64', 'xstate_bv'],
    [2, rep, 'uint32', 'ymmh_space'],
    [3, rep, 'uint64', 'bndreg_state'],
    [4, rep, 'uint64', 'bndcsr_state'],
    [5, rep, 'uint64', 'opmask_reg'],
    [6, rep, 'uint64', 'zmm_upper'],
    [7, rep, 'uint64', 'hi16_zmm'],
    [8, rep, 'uint32', 'pkru'],
  ],
  task_core_entry: [
    [1, req, 'uint32', 'task_state'],
    [2, req, 'uint32', 'exit_code'],
    [3, req, 'uint32', 'personality'],
    [4, req, 'uint32', 'flags'],
    [5, req, 'uint64', 'blk_sigset'],
    [6, req, 'string', 'comm'],
    [7, opt, 'message', 'timers', 'task_timers_entry'],
    [8, opt, 'message', 'rlimits', 'task_rlimits_entry'],
    [10, opt, 'message', 'signals_s', 'signal_queue_entry'],
    [11, opt, 'enum', 'old_seccomp_mode'],
    [15, rep, 'message', 'sigactions', 'sa_entry'],
  ],
  // timer.proto
  // file-lock.proto: one filelocks.img for the whole dump; type F_RDLCK 0 / F_WRLCK 1; len 0 = to the end of the file
  file_lock_entry: [
    [1, req, 'uint32', 'flag'],
    [2, req, 'uint32', 'type'],
    [3, req, 'int32', 'pid'],
    [4, req, 'int32', 'fd'],
    [5, req, 'int64', 'start'],
    [6, req, 'int64', 'len'],
  ],
  task_timers_entry: [
    [1, req, 'message', 'real', 'itimer_entry'],
    [2, req, 'message', 'virt', 'itimer_entry'],
    [3, req, 'message', 'prof', 'itimer_entry'],
    [4, rep, 'message', 'posix', 'posix_timer_entry'],
  ],
  posix_timer_entry: [
    [1, req, 'uint32', 'it_id'],
    [2, req, 'uint32', 'clock_id'],
    [3, req, 'uint32', 'si_signo'],
    [4, req, 'uint32', 'it_sigev_notify'],
    [5, req, 'uint64', 'sival_ptr'],
    [6, req, 'uint32', 'overrun'],
    [7, req, 'uint64', 'isec'],
    [8, req, 'uint64', 'insec'],
    [9, req, 'uint64', 'vsec'],
    [10, req, 'uint64', 'vnsec'],
    [11, opt, 'int32', 'notify_thread_id'],
  ],
  itimer_entry: [
    [1, req, 'uint64', 'isec'],
    [2, req, 'uint64', 'iusec'],
    [3, req, 'uint64', 'vsec'],
    [4, req, 'uint64', 'vusec'],
  ],
  task_rlimits_entry: [[1, rep, 'message', 'rlimits', 'rlimit_entry']],
  // rlimit.proto
  rlimit_entry: [
    [1, req, 'uint64', 'cur'],
    [2, req, 'uint64', 'max'],
  ],
  signal_queue_entry: [[1, rep, 'message', 'signals', 'siginfo_entry']],
  // siginfo.proto
  siginfo_entry: [[1, req, 'bytes', 'siginfo']],
  // sa.proto
  sa_entry: [
    [1, req, 'uint64', 'sigaction'],
    [2, req, 'uint64', 'flags'],
    [3, req, 'uint64', 'restorer'],
    [4, req, 'uint64', 'mask'],
    [5, opt, 'bool', 'compat_sigaction'],
    [6, opt, 'uint64', 'mask_extended'],
  ],
  thread_sas_entry: [
    [1, req, 'uint64', 'ss_sp'],
    [2, req, 'uint64', 'ss_size'],
    [3, req, 'uint32', 'ss_flags'],
  ],
  thread_core_entry: [
    [1, req, 'uint64', 'futex_rla'],
    [2, req, 'uint32', 'futex_rla_len'],
    [6, opt, 'uint64', 'blk_sigset'],
    [7, opt, 'message', 'sas', 'thread_sas_entry'],
    [9, opt, 'message', 'signals_p', 'signal_queue_entry'],
    [10, opt, 'message', 'creds', 'creds_entry'],
    [11, opt, 'enum', 'seccomp_mode'],
    [13, opt, 'string', 'comm'],
    [15, opt, 'message', 'rseq_entry', 'rseq_entry'],
  ],
  // rseq.proto
  rseq_entry: [
    [1, req, 'uint64', 'rseq_abi_pointer'],
    [2, req, 'uint32', 'rseq_abi_size'],
    [3, req, 'uint32', 'signature'],
    [4, opt, 'uint64', 'rseq_cs_pointer'],
  ],
  // creds.proto
  creds_entry: [
    [1, req, 'uint32', 'uid'],
    [2, req, 'uint32', 'gid'],
    [3, req, 'uint32', 'euid'],
    [4, req, 'uint32', 'egid'],
    [5, req, 'uint32', 'suid'],
    [6, req, 'uint32', 'sgid'],
    [7, req, 'uint32', 'fsuid'],
    [8, req, 'uint32', 'fsgid'],
    [9, rep, 'uint32', 'cap_inh'],
    [10, rep, 'uint32', 'cap_prm'],
    [11, rep, 'uint32', 'cap_eff'],
    [12, rep, 'uint32', 'cap_bnd'],
    [13, req, 'uint32', 'secbits'],
    [14, rep, 'uint32', 'groups'],
  ],
  // mm.proto
  mm_entry: [
    [1, req, 'uint64', 'mm_start_code'],
    [2, req, 'uint64', 'mm_end_code'],
    [3, req, 'uint64', 'mm_start_data'],
    [4, req, 'uint64', 'mm_end_data'],
    [5, req, 'uint64', 'mm_start_stack'],
    [6, req, 'uint64', 'mm_start_brk'],
    [7, req, 'uint64', 'mm_brk'],
    [8, req, 'uint64', 'mm_arg_start'],
    [9, req, 'uint64', 'mm_arg_end'],
    [10, req, 'uint64', 'mm_env_start'],
    [11, req, 'uint64', 'mm_env_end'],
    [12, req, 'uint32', 'exe_file_id'],
    [13, rep, 'uint64', 'mm_saved_auxv'],
    [14, rep, 'message', 'vmas', 'vma_entry'],
    [15, opt, 'int32', 'dumpable'],
  ],
  // vma.proto
  vma_entry: [
    [1, req, 'uint64', 'start'],
    [2, req, 'uint64', 'end'],
    [3, req, 'uint64', 'pgoff'],
    [4, req, 'uint64', 'shmid'],
    [5, req, 'uint32', 'prot'],
    [6, req, 'uint32', 'flags'],
    [7, req, 'uint32', 'status'],
    [8, req, 'sint64', 'fd'],
    [9, opt, 'uint64', 'madv'],
    [10, opt, 'uint32', 'fdflags'],
  ],
  // pagemap.proto
  pagemap_head: [[1, req, 'uint32', 'pages_id']],
  pagemap_entry: [
    [1, req, 'uint64', 'vaddr'],
    [2, req, 'uint32', 'nr_pages'],
    [3, opt, 'bool', 'in_parent'],
    [4, opt, 'uint32', 'flags'],
  ],
  // fs.proto
  fs_entry: [
    [1, req, 'uint32', 'cwd_id'],
    [2, req, 'uint32', 'root_id'],
    [3, opt, 'uint32', 'umask'],
  ],
  // fdinfo.proto
  fdinfo_entry: [
    [1, req, 'uint32', 'id'],
    [2, req, 'uint32', 'flags'],
    [3, req, 'enum', 'type'],
    [4, req, 'uint32', 'fd'],
  ],
  file_entry: [
    [1, req, 'enum', 'type'],
    [2, req, 'uint32', 'id'],
    [3, opt, 'message', 'reg', 'reg_file_entry'],
  ],
  // regfile.proto
  reg_file_entry: [
    [1, req, 'uint32', 'id'],
    [2, req, 'uint32', 'flags'],
    [3, req, 'uint64', 'pos'],
    [5, req, 'message', 'fown', 'fown_entry'],
    [6, req, 'string', 'name'],
    [7, opt, 'sint32', 'mnt_id'],
    [8, opt, 'uint64', 'size'],
    [9, opt, 'bool', 'ext'],
    [10, opt, 'uint32', 'mode'],
  ],
  // utsns.proto
  utsns_entry: [
    [1, req, 'string', 'nodename'],
    [2, req, 'string', 'domainname'],
  ],
  // fown.proto
  fown_entry: [
    [1, req, 'uint32', 'uid'],
    [2, req, 'uint32', 'euid'],
    [3, req, 'uint32', 'signum'],
    [4, req, 'uint32', 'pid_type'],
    [5, req, 'uint32', 'pid'],
  ],
} satisfies Record<string, Row[]>;

export type MessageName = keyof typeof TABLE;

export const MESSAGES = Object.fromEntries(
  Object.entries(TABLE).map(([name, rows]) => [
    name,
    (rows as Row[]).map(([num, label, type, fname, msg]) => ({ num, label, type, name: fname, msg: msg as MessageName | undefined })),
  ]),
) as Record<MessageName, FieldDef[]>;

// ------------------------------------------------------------------ magics and constants

/** Second magic word of each image file (the first is IMG_COMMON, except for inventory.img). */
export const MAGIC = {
  IMG_COMMON: 0x54564319,
  IMG_SERVICE: 0x55105940,
  INVENTORY: 0x58313116,
  PSTREE: 0x50273030,
  CORE: 0x55053847,
  IDS: 0x54432030,
  CREDS: 0x54023547,
  FS: 0x51403912,
  MM: 0x57492820,
  PAGEMAP: 0x56084025,
  FDINFO: 0x56213732,
  FILES: 0x56303138,
  REG_FILES: 0x50363636,
  UTSNS: 0x54473203,
  FILE_LOCKS: 0x54323616,
} as const;

/** file_lock_entry.flag (CRIU's FL_*). */
export const CRIU_FL = { POSIX: 1, FLOCK: 2, OFD: 4, LEASE: 8 } as const;

/** inventory_entry.img_version: CRTOOLS_IMAGES_V1_1 (common magic at the head of every image but inventory). */
export const CRTOOLS_IMAGES_V1_1 = 2;
export const CORE_MARCH_X86_64 = 1;
export const X86_REGS_NATIVE = 1;
export const FD_TYPE_REG = 1;
/** task_core_entry.task_state (compel's task states). */
export const TASK_ALIVE = 1;
export const TASK_STOPPED = 3;
export const TASK_ZOMBIE = 6;
/** pagemap_entry.flags */
export const PE_PARENT = 1;
export const PE_LAZY = 2;
export const PE_PRESENT = 4;

/** vma_entry.status (criu/include/image.h). */
export const VMA = {
  AREA_REGULAR: 1 << 0,
  AREA_STACK: 1 << 1,
  AREA_VSYSCALL: 1 << 2,
  AREA_VDSO: 1 << 3,
  AREA_HEAP: 1 << 5,
  FILE_PRIVATE: 1 << 6,
  FILE_SHARED: 1 << 7,
  ANON_SHARED: 1 << 8,
  ANON_PRIVATE: 1 << 9,
  AREA_SYSVIPC: 1 << 10,
  AREA_SOCKET: 1 << 11,
  AREA_VVAR: 1 << 12,
  AREA_AIORING: 1 << 13,
  AREA_MEMFD: 1 << 14,
} as const;

/** mmap(2) flags as vma_entry.flags holds them. */
export const MAP = { SHARED: 0x1, PRIVATE: 0x2, ANONYMOUS: 0x20, GROWSDOWN: 0x100, HUGETLB: 0x40000 } as const;

for (const [name, defs] of Object.entries(MESSAGES)) {
  for (const f of defs) {
    if ((f.type === 'message') !== (f.msg !== undefined) || (f.msg !== undefined && !(f.msg in MESSAGES))) {
      throw new Error(`CRIU table: ${name}.${f.name} names an unknown message type ${String(f.msg)}`);
    }
  }
}
