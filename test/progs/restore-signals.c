/*
 * Test program for signal dispositions across dump and restore.
 *
 *   restore-signals OUT MODE
 *
 * SIGUSR1 has a handler (SA_SIGINFO | SA_RESTART | SA_ONSTACK, sa_mask SIGINT)
 * that counts the signals (by 1 when it runs on the main thread's alternate
 * signal stack, by 1000 when not); SIGUSR2 and SIGPIPE are ignored. MODE "futex": the main thread
 * waits in FUTEX_WAIT (no timeout) on a word that a second thread bumps and
 * wakes every 2 ms (an interrupted wait returns -ERESTARTSYS to the kernel);
 * MODE "sleep": the main thread sleeps in nanosleep(2 ms)
 * (-ERESTART_RESTARTBLOCK). SIGTERM is blocked. An interval timer (ITIMER_REAL,
 * every 20 ms) raises SIGALRM, whose handler counts too. After each wake-up it
 * appends "N USR1 SPURIOUS TERM ALRM\n" to OUT (its fd 3): N counts lines, USR1
 * the SIGUSR1 handled, SPURIOUS the calls that failed with EINTR while no
 * handler ran (a checkpoint must never cause one), TERM 1 while a SIGTERM is
 * pending, ALRM the SIGALRM handled. Kill it with SIGKILL.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1, alrm;
static volatile int word;

static char altstack[64 * 1024];
static void on_usr1(int sig, siginfo_t *si, void *uc) {
  (void)sig; (void)si; (void)uc;
  char here;
  usr1 += (&here >= altstack && &here < altstack + sizeof altstack) ? 1 : 1000;
}
static void on_alrm(int sig) { (void)sig; alrm++; }

static void *feeder(void *arg) {
  (void)arg;
  for (;;) {
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, 0);
    __atomic_add_fetch(&word, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: %s OUT futex|sleep\n", argv[0]); return 2; }
  syscall(SYS_close_range, 3, ~0U, 0); /* inherit no stray fds from the test runner */
  int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out != 3) return 1;
  int waiting = strcmp(argv[2], "futex") == 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_usr1;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  stack_t ss = {altstack, 0, sizeof altstack};
  if (sigaltstack(&ss, 0)) return 1;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  if (sigaction(SIGUSR1, &sa, 0)) return 1;
  signal(SIGUSR2, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &term, 0)) return 1;
  struct sigaction al;
  memset(&al, 0, sizeof al);
  al.sa_handler = on_alrm;
  al.sa_flags = SA_RESTART;
  if (sigaction(SIGALRM, &al, 0)) return 1;
  struct itimerval it = {{0, 20 * 1000}, {0, 20 * 1000}};
  if (setitimer(ITIMER_REAL, &it, 0)) return 1;
  if (waiting) {
    pthread_t t;
    if (pthread_create(&t, 0, feeder, 0)) return 1;
  }
  unsigned long n = 0, spurious = 0;
  for (;;) {
    int seen = usr1 + alrm;
    long r;
    if (waiting) {
      int v = word;
      r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, v, 0, 0, 0);
      if (r < 0 && errno == EAGAIN) r = 0; /* bumped before we slept */
    } else {
      struct timespec ts = {0, 2 * 1000 * 1000};
      r = nanosleep(&ts, 0);
    }
    if (r < 0 && errno == EINTR && usr1 + alrm == seen) spurious++;
    sigset_t pend;
    sigpending(&pend);
    char line[80];
    int len = snprintf(line, sizeof line, "%lu %d %lu %d %d\n", ++n, (int)usr1, spurious, sigismember(&pend, SIGTERM), (int)alrm);
    if (write(out, line, len) != len) abort();
  }
}
