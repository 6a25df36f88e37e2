/*
 * Test program for ELF core conversion and live dumping.
 *
 *   regs-threads [FILE [NTHREADS]]
 *
 * Starts NTHREADS threads in total (default 4, the main thread included). Thread
 * i loads known values into rbx, rbp, r12-r15 and into xmm0-15 (and the upper
 * halves of ymm0-15 with AVX, zmm0-15 with AVX-512), then parks in a raw
 * pause() syscall loop so that the registers stay as loaded. The program also
 * fills memory with known patterns (a .bss array, a heap block, an anonymous
 * mapping with untouched and zero pages) and, when FILE is given, maps it
 * privately read-only and keeps it open.
 *
 * When every other thread is parked, the main thread prints one line
 *   READY pid=P tids=T0,T1,.. data=0x.. heap=0x.. anon=0x.. file=0x.. fd=N avx=0|1 avx512=0|1 zmm_off=N
 * and parks as well (zmm_off: the CPU's standard-form XSAVE offset of ZMM_Hi256, CPUID 0xD.6 EBX: 1152 on
 * Intel, 896 on AMD Zen 4; 0 without AVX-512). Kill it with SIGKILL.
 *
 * Values (t = thread index, main thread 0; j = 0..5 for rbx, rbp, r12, r13, r14, r15; k = 0..15):
 *   gpr  = 0xA5A5000000000000 | t << 32 | j << 16 | 0xBEEF
 *   zmm k, qword q (q = 0..7; 0-1 are the xmm part, 2-3 the ymm upper half, 4-7 the zmm upper half):
 *        = 0x3C00000000000000 | q << 52 | t << 32 | k << 16 | 0x1234
 * Memory (region r: 1 data, 2 heap, 3 anon; byte i of the region):
 *   pattern(r, i) = (i * 131 + r * 17 + (i >> 12) * 7) & 0xff
 *   data: 3 pages, heap: 5 pages (from a page-aligned address), anon: 8 pages where pages
 *   1, 2 and 6 are never touched, page 5 is written and then zeroed, others hold the pattern.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAXT 16

struct parkvals {
  uint64_t z[16][8]; /* offset 0: full zmm images */
  uint64_t gpr[6];   /* offset 1024: rbx, rbp, r12, r13, r14, r15 */
  uint64_t mode;     /* offset 1072: 0 SSE, 1 AVX, 2 AVX-512 */
};

void park(struct parkvals *v) __attribute__((noreturn));
__asm__(
    ".text\n"
    ".globl park\n"
    ".type park,@function\n"
    "park:\n"
    "  mov 1072(%rdi), %rax\n"
    "  cmp $2, %rax\n"
    "  je 3f\n"
    "  cmp $1, %rax\n"
    "  je 2f\n"
    "  movdqu 0(%rdi), %xmm0\n  movdqu 64(%rdi), %xmm1\n  movdqu 128(%rdi), %xmm2\n  movdqu 192(%rdi), %xmm3\n"
    "  movdqu 256(%rdi), %xmm4\n  movdqu 320(%rdi), %xmm5\n  movdqu 384(%rdi), %xmm6\n  movdqu 448(%rdi), %xmm7\n"
    "  movdqu 512(%rdi), %xmm8\n  movdqu 576(%rdi), %xmm9\n  movdqu 640(%rdi), %xmm10\n  movdqu 704(%rdi), %xmm11\n"
    "  movdqu 768(%rdi), %xmm12\n  movdqu 832(%rdi), %xmm13\n  movdqu 896(%rdi), %xmm14\n  movdqu 960(%rdi), %xmm15\n"
    "  jmp 4f\n"
    "2:\n"
    "  vmovdqu 0(%rdi), %ymm0\n  vmovdqu 64(%rdi), %ymm1\n  vmovdqu 128(%rdi), %ymm2\n  vmovdqu 192(%rdi), %ymm3\n"
    "  vmovdqu 256(%rdi), %ymm4\n  vmovdqu 320(%rdi), %ymm5\n  vmovdqu 384(%rdi), %ymm6\n  vmovdqu 448(%rdi), %ymm7\n"
    "  vmovdqu 512(%rdi), %ymm8\n  vmovdqu 576(%rdi), %ymm9\n  vmovdqu 640(%rdi), %ymm10\n  vmovdqu 704(%rdi), %ymm11\n"
    "  vmovdqu 768(%rdi), %ymm12\n  vmovdqu 832(%rdi), %ymm13\n  vmovdqu 896(%rdi), %ymm14\n  vmovdqu 960(%rdi), %ymm15\n"
    "  jmp 4f\n"
    "3:\n"
    "  vmovdqu64 0(%rdi), %zmm0\n  vmovdqu64 64(%rdi), %zmm1\n  vmovdqu64 128(%rdi), %zmm2\n  vmovdqu64 192(%rdi), %zmm3\n"
    "  vmovdqu64 256(%rdi), %zmm4\n  vmovdqu64 320(%rdi), %zmm5\n  vmovdqu64 384(%rdi), %zmm6\n  vmovdqu64 448(%rdi), %zmm7\n"
    "  vmovdqu64 512(%rdi), %zmm8\n  vmovdqu64 576(%rdi), %zmm9\n  vmovdqu64 640(%rdi), %zmm10\n  vmovdqu64 704(%rdi), %zmm11\n"
    "  vmovdqu64 768(%rdi), %zmm12\n  vmovdqu64 832(%rdi), %zmm13\n  vmovdqu64 896(%rdi), %zmm14\n  vmovdqu64 960(%rdi), %zmm15\n"
    "4:\n"
    "  mov 1024(%rdi), %rbx\n  mov 1032(%rdi), %rbp\n  mov 1040(%rdi), %r12\n"
    "  mov 1048(%rdi), %r13\n  mov 1056(%rdi), %r14\n  mov 1064(%rdi), %r15\n"
    "5:\n"
    "  mov $34, %eax\n" /* pause() */
    "  syscall\n"
    "  jmp 5b\n"
    ".size park, .-park\n");

static int nthreads = 4;
static int mode;
static struct parkvals vals[MAXT];
static volatile pid_t tids[MAXT];
static unsigned char data_pat[3 * 4096] __attribute__((aligned(4096)));

static uint8_t pattern(int r, size_t i) { return (uint8_t)((i * 131 + r * 17 + (i >> 12) * 7) & 0xff); }

static void fill(struct parkvals *v, int t) {
  for (int j = 0; j < 6; j++) v->gpr[j] = 0xA5A5000000000000ull | ((uint64_t)t << 32) | ((uint64_t)j << 16) | 0xBEEF;
  for (int k = 0; k < 16; k++)
    for (int q = 0; q < 8; q++)
      v->z[k][q] = 0x3C00000000000000ull | ((uint64_t)q << 52) | ((uint64_t)t << 32) | ((uint64_t)k << 16) | 0x1234;
  v->mode = (uint64_t)mode;
}

static void *thread_main(void *arg) {
  int t = (int)(intptr_t)arg;
  tids[t] = (pid_t)syscall(SYS_gettid);
  park(&vals[t]);
}

/* True when thread tid of this process sits in syscall 34 (pause). */
static int parked(pid_t tid) {
  char path[64], buf[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  return strncmp(buf, "34 ", 3) == 0;
}

static int os_avx512(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 16))) return 0;
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 0xe6) == 0xe6;
}

/* Standard-form XSAVE offset of the ZMM_Hi256 component (CPUID leaf 0xD, sub-leaf 6, EBX). */
static unsigned zmm_offset(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(0xd, 6, &a, &b, &c, &d)) return 0;
  return b;
}

static int os_avx(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)) || !(c & (1u << 28))) return 0;
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 6) == 6;
}

int main(int argc, char **argv) {
  const char *file = argc > 1 && argv[1][0] ? argv[1] : NULL;
  if (argc > 2) nthreads = atoi(argv[2]);
  if (nthreads < 1 || nthreads > MAXT) { fprintf(stderr, "bad thread count\n"); return 2; }
  mode = os_avx512() ? 2 : os_avx() ? 1 : 0;

  for (size_t i = 0; i < sizeof data_pat; i++) data_pat[i] = pattern(1, i);
  unsigned char *heap = aligned_alloc(4096, 5 * 4096);
  for (size_t i = 0; i < 5 * 4096; i++) heap[i] = pattern(2, i);
  unsigned char *anon = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (anon == MAP_FAILED) { perror("mmap"); return 1; }
  for (int p = 0; p < 8; p++) {
    if (p == 1 || p == 2 || p == 6) continue;
    for (size_t i = p * 4096; i < (size_t)(p + 1) * 4096; i++) anon[i] = pattern(3, i);
  }
  memset(anon + 5 * 4096, 0, 4096);

  void *fmap = NULL;
  int fd = -1;
  if (file) {
    fd = open(file, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) { perror(file); return 1; }
    fmap = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (fmap == MAP_FAILED) { perror("mmap file"); return 1; }
    volatile unsigned char touch = *(volatile unsigned char *)fmap;
    (void)touch;
  }

  for (int t = 0; t < nthreads; t++) fill(&vals[t], t);
  tids[0] = (pid_t)syscall(SYS_gettid);
  for (int t = 1; t < nthreads; t++) {
    pthread_t th;
    if (pthread_create(&th, NULL, thread_main, (void *)(intptr_t)t) != 0) { perror("pthread_create"); return 1; }
  }
  for (int t = 1; t < nthreads; t++) {
    while (tids[t] == 0 || !parked(tids[t])) usleep(1000);
  }

  printf("READY pid=%d tids=", (int)getpid());
  for (int t = 0; t < nthreads; t++) printf("%s%d", t ? "," : "", (int)tids[t]);
  printf(" data=%p heap=%p anon=%p file=%p fd=%d avx=%d avx512=%d zmm_off=%u\n", (void *)data_pat, (void *)heap, (void *)anon, fmap,
         fd, mode >= 1, mode == 2, mode == 2 ? zmm_offset() : 0u);
  fflush(stdout);
  park(&vals[0]);
}
