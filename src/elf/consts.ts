/**
 * ELF core file constants for x86_64 Linux: header fields, note types and the
 * layouts of the note descriptors crimg reads and writes. Offsets are those of
 * the kernel's structures (include/uapi/linux/elfcore.h, arch/x86) on x86_64.
 */

export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7fELF"
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const EV_CURRENT = 1;
export const ET_CORE = 4;
export const EM_X86_64 = 62;

export const EHDR_BYTES = 64;
export const PHDR_BYTES = 56;
export const SHDR_BYTES = 64;
/** e_phnum value meaning "the real count is in section header 0's sh_info". */
export const PN_XNUM = 0xffff;

export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;

/** Core and ELF page size. */
export const CORE_PAGE = 4096;

// ---- notes
export const NOTE_HDR_BYTES = 12;
export const NAME_CORE = 'CORE';
export const NAME_LINUX = 'LINUX';
export const NT_PRSTATUS = 1;
export const NT_FPREGSET = 2;
export const NT_PRPSINFO = 3;
export const NT_AUXV = 6;
export const NT_SIGINFO = 0x53494749;
export const NT_FILE = 0x46494c45;
export const NT_X86_XSTATE = 0x202;
export const NT_X86_XSAVE_LAYOUT = 0x205;

// ---- struct elf_prstatus (336 bytes)
export const PRSTATUS_BYTES = 336;
export const PRS_SIGNO = 0; // struct elf_siginfo { int si_signo, si_code, si_errno }
export const PRS_CODE = 4;
export const PRS_ERRNO = 8;
export const PRS_CURSIG = 12; // short
export const PRS_SIGPEND = 16; // unsigned long
export const PRS_SIGHOLD = 24;
export const PRS_PID = 32;
export const PRS_PPID = 36;
export const PRS_PGRP = 40;
export const PRS_SID = 44;
export const PRS_UTIME = 48; // 4 struct timeval: utime, stime, cutime, cstime
export const PRS_REG = 112; // elf_gregset_t = user_regs_struct, 27 u64
export const PRS_FPVALID = 328;

// ---- struct elf_prpsinfo (136 bytes)
export const PRPSINFO_BYTES = 136;
export const PSI_STATE = 0;
export const PSI_SNAME = 1;
export const PSI_ZOMB = 2;
export const PSI_NICE = 3;
export const PSI_FLAG = 8;
export const PSI_UID = 16;
export const PSI_GID = 20;
export const PSI_PID = 24;
export const PSI_PPID = 28;
export const PSI_PGRP = 32;
export const PSI_SID = 36;
export const PSI_FNAME = 40;
export const PSI_FNAME_BYTES = 16;
export const PSI_PSARGS = 56;
export const PSI_PSARGS_BYTES = 80;

export const FPREGSET_BYTES = 512;
export const SIGINFO_BYTES = 128;

// ---- auxiliary vector
export const AT_NULL = 0;
export const AT_PHDR = 3;
export const AT_PHENT = 4;
export const AT_PHNUM = 5;
export const AT_PAGESZ = 6;
export const AT_BASE = 7;
export const AT_ENTRY = 9;
export const AT_UID = 11;
export const AT_EUID = 12;
export const AT_GID = 13;
export const AT_EGID = 14;
export const AT_EXECFN = 31;
export const AT_SYSINFO_EHDR = 33;

export const VSYSCALL_ADDR = 0xffffffffff600000n;

/** Round up to a multiple of 4. */
export const align4 = (n: number): number => (n + 3) & ~3;
