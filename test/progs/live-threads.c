/*
 * Target for live dump tests.
 *
 *   live-threads FILE [NTHREADS]
 *
 * Starts NTHREADS "parked" threads (default 4, the main thread is thread 0).
 * Thread t loads known values into rbx, rbp, r12-r15 and xmm0-15 and then loops
 * forever in raw assembly: nanosleep (thread 1 sleeps 1 s at a time, the
 * others 20 ms), check that nanosleep returned 0 and that every one of those
 * registers still holds its value, count one round. If nanosleep ever fails
 * (EINTR leaking out of a checkpoint) the process exits with status 3; if a
 * register changed, with status 4. Parked threads block SIGUSR1.
 *
 * One more thread (the "signal thread") waits in pause() with SIGUSR1
 * unblocked; its handler writes "USR1\n" to stdout, so the number of those
 * lines is the number of SIGUSR1 deliveries.
 *
 * Memory patterns (pattern(r, i) = (i * 131 + r * 17 + (i >> 12) * 7) & 0xff):
 *   data: 3 pages of .bss (r = 1); heap: 5 pages from aligned_alloc (r = 2);
 *   anon: 8 pages mmap'ed (a VMA of their own), pages 1, 2 and 6 never touched, page 5 written then zeroed,
 *   the others hold pattern(3, i).
 * FILE is opened read-write and its offset set to 12345 (kept open).
 *
 * When all threads run, prints one line and keeps running until killed:
 *   READY pid=P tids=T0,T1,.. sig=TS data=0x.. heap=0x.. anon=0x.. fd=N vals=0x.. stride=S
 * (vals: address of the per-thread value blocks, S bytes apart; the round counter
 * of thread t is the u64 at vals + S t + 320.)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAXT 16

struct parkvals {
  uint64_t xmm[16][2]; /*   0: xmm0-15 (lo, hi) */
  uint64_t gpr[6];     /* 256: rbx, rbp, r12, r13, r14, r15 */
  int64_t ts[2];       /* 304: nanosleep interval */
  uint64_t counter;    /* 320 */
  uint64_t pad;        /* 328 */
  uint64_t scratch[32];/* 336: xmm stored for the check */
  uint64_t pad2[2];
} __attribute__((aligned(64)));

void park(struct parkvals *v) __attribute__((noreturn));
__asm__(
    ".text\n"
    ".globl park\n"
    ".type park,@function\n"
    "park:\n"
    "  mov %rdi, %r9\n"
    "  movdqu 0(%r9), %xmm0\n  movdqu 16(%r9), %xmm1\n  movdqu 32(%r9), %xmm2\n  movdqu 48(%r9), %xmm3\n"
    "  movdqu 64(%r9), %xmm4\n  movdqu 80(%r9), %xmm5\n  movdqu 96(%r9), %xmm6\n  movdqu 112(%r9), %xmm7\n"
    "  movdqu 128(%r9), %xmm8\n  movdqu 144(%r9), %xmm9\n  movdqu 160(%r9), %xmm10\n  movdqu 176(%r9), %xmm11\n"
    "  movdqu 192(%r9), %xmm12\n  movdqu 208(%r9), %xmm13\n  movdqu 224(%r9), %xmm14\n  movdqu 240(%r9), %xmm15\n"
    "  mov 256(%r9), %rbx\n  mov 264(%r9), %rbp\n  mov 272(%r9), %r12\n"
    "  mov 280(%r9), %r13\n  mov 288(%r9), %r14\n  mov 296(%r9), %r15\n"
    "1:\n"
    "  lea 304(%r9), %rdi\n"
    "  xor %esi, %esi\n"
    "  mov $35, %eax\n" /* nanosleep */
    "  syscall\n"
    "  test %rax, %rax\n"
    "  jnz 8f\n"
    "  cmp 256(%r9), %rbx\n  jne 9f\n"
    "  cmp 264(%r9), %rbp\n  jne 9f\n"
    "  cmp 272(%r9), %r12\n  jne 9f\n"
    "  cmp 280(%r9), %r13\n  jne 9f\n"
    "  cmp 288(%r9), %r14\n  jne 9f\n"
    "  cmp 296(%r9), %r15\n  jne 9f\n"
    "  movdqu %xmm0, 336(%r9)\n  movdqu %xmm1, 352(%r9)\n  movdqu %xmm2, 368(%r9)\n  movdqu %xmm3, 384(%r9)\n"
    "  movdqu %xmm4, 400(%r9)\n  movdqu %xmm5, 416(%r9)\n  movdqu %xmm6, 432(%r9)\n  movdqu %xmm7, 448(%r9)\n"
    "  movdqu %xmm8, 464(%r9)\n  movdqu %xmm9, 480(%r9)\n  movdqu %xmm10, 496(%r9)\n  movdqu %xmm11, 512(%r9)\n"
    "  movdqu %xmm12, 528(%r9)\n  movdqu %xmm13, 544(%r9)\n  movdqu %xmm14, 560(%r9)\n  movdqu %xmm15, 576(%r9)\n"
    "  xor %ecx, %ecx\n"
    "2:\n"
    "  mov 336(%r9,%rcx,8), %rax\n"
    "  cmp 0(%r9,%rcx,8), %rax\n"
    "  jne 9f\n"
    "  inc %rcx\n"
    "  cmp $32, %rcx\n"
    "  jb 2b\n"
    "  lock incq 320(%r9)\n"
    "  jmp 1b\n"
    "8:\n"
    "  mov $231, %eax\n  mov $3, %edi\n  syscall\n"
    "9:\n"
    "  mov $231, %eax\n  mov $4, %edi\n  syscall\n"
    ".size park, .-park\n");

static int nthreads = 4;
static struct parkvals vals[MAXT];
static volatile pid_t tids[MAXT + 1];
static unsigned char data_pat[3 * 4096] __attribute__((aligned(4096)));

static uint8_t pattern(int r, size_t i) { return (uint8_t)((i * 131 + r * 17 + (i >> 12) * 7) & 0xff); }

static void fill(struct parkvals *v, int t) {
  memset(v, 0, sizeof *v);
  for (int j = 0; j < 6; j++) v->gpr[j] = 0xA5A5000000000000ull | ((uint64_t)t << 32) | ((uint64_t)j << 16) | 0xBEEF;
  for (int k = 0; k < 16; k++) {
    v->xmm[k][0] = 0x3C00000000000000ull | ((uint64_t)t << 32) | ((uint64_t)k << 16) | 0x1234;
    v->xmm[k][1] = v->xmm[k][0] | (1ull << 52);
  }
  v->ts[0] = t == 1 ? 1 : 0;
  v->ts[1] = t == 1 ? 0 : 20 * 1000 * 1000;
}

static void *thread_main(void *arg) {
  int t = (int)(intptr_t)arg;
  tids[t] = (pid_t)syscall(SYS_gettid);
  park(&vals[t]);
}

static void on_usr1(int sig) {
  (void)sig;
  static const char m[] = "USR1\n";
  ssize_t r = write(1, m, sizeof m - 1);
  (void)r;
}

static void *signal_thread(void *arg) {
  (void)arg;
  tids[MAXT] = (pid_t)syscall(SYS_gettid);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  pthread_sigmask(SIG_UNBLOCK, &s, NULL);
  for (;;) pause();
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: live-threads FILE [NTHREADS]\n"); return 2; }
  close_range(3, ~0U, 0); /* nothing inherited: only the files set up here */
  if (argc > 2) nthreads = atoi(argv[2]);
  if (nthreads < 2 || nthreads > MAXT) { fprintf(stderr, "bad thread count\n"); return 2; }

  for (size_t i = 0; i < sizeof data_pat; i++) data_pat[i] = pattern(1, i);
  unsigned char *heap = aligned_alloc(4096, 5 * 4096);
  for (size_t i = 0; i < 5 * 4096; i++) heap[i] = pattern(2, i);
  /* 8 pages between two PROT_NONE pages, so that the kernel keeps them one VMA of their own */
  unsigned char *guard = mmap(NULL, 10 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (guard == MAP_FAILED) { perror("mmap"); return 1; }
  unsigned char *anon = mmap(guard + 4096, 8 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (anon == MAP_FAILED) { perror("mmap"); return 1; }
  for (int p = 0; p < 8; p++) {
    if (p == 1 || p == 2 || p == 6) continue;
    for (size_t i = p * 4096; i < (size_t)(p + 1) * 4096; i++) anon[i] = pattern(3, i);
  }
  memset(anon + 5 * 4096, 0, 4096);

  int fd = open(argv[1], O_RDWR);
  if (fd < 0 || lseek(fd, 12345, SEEK_SET) != 12345) { perror(argv[1]); return 1; }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &s, NULL); /* inherited by the parked threads */

  for (int t = 0; t < nthreads; t++) fill(&vals[t], t);
  tids[0] = (pid_t)syscall(SYS_gettid);
  pthread_t th;
  if (pthread_create(&th, NULL, signal_thread, NULL) != 0) { perror("pthread_create"); return 1; }
  for (int t = 1; t < nthreads; t++) {
    if (pthread_create(&th, NULL, thread_main, (void *)(intptr_t)t) != 0) { perror("pthread_create"); return 1; }
  }
  for (int t = 1; t < nthreads; t++) {
    while (tids[t] == 0 || __atomic_load_n(&vals[t].counter, __ATOMIC_SEQ_CST) == 0) usleep(1000);
  }
  while (tids[MAXT] == 0) usleep(1000);

  printf("READY pid=%d tids=", (int)getpid());
  for (int t = 0; t < nthreads; t++) printf("%s%d", t ? "," : "", (int)tids[t]);
  printf(" sig=%d data=%p heap=%p anon=%p fd=%d vals=%p stride=%zu\n", (int)tids[MAXT], (void *)data_pat, (void *)heap,
         (void *)anon, fd, (void *)vals, sizeof vals[0]);
  fflush(stdout);
  park(&vals[0]);
}
