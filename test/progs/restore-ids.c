/*
 * Test program for restoring into a new PID namespace (crimg restore --pid-ns).
 *
 *   restore-ids DIR [NTHREADS]
 *
 * NTHREADS threads in total (default 3, the main thread included). Every ~2 ms
 * thread i appends "PID TID KILL\n" to DIR/ids<i> (its own fd): PID = getpid(),
 * TID = gettid() and KILL = the result of pthread_kill(t, 0) for the next
 * thread t (0, or an errno: glibc signals the tid it cached when t started, so
 * after a restore that gave t another tid it gets ESRCH). Kill it with SIGKILL.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

static char *dir;
static long nt;
static pthread_t threads[64];
static volatile int go;

static void *run(void *arg) {
  long i = (long)arg;
  char path[4096];
  snprintf(path, sizeof path, "%s/ids%ld", dir, i);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) { perror("open"); exit(1); }
  while (!go) { struct timespec w = {0, 100 * 1000}; nanosleep(&w, 0); } /* every threads[] entry is set */
  for (;;) {
    char line[64];
    int k = pthread_kill(threads[(i + 1) % nt], 0);
    int n = snprintf(line, sizeof line, "%d %ld %d\n", (int)getpid(), (long)syscall(SYS_gettid), k);
    if (write(fd, line, n) != n) abort();
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, 0);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: %s DIR [NTHREADS]\n", argv[0]); return 2; }
  syscall(SYS_close_range, 3, ~0U, 0); /* inherit no stray fds from the test runner */
  dir = argv[1];
  nt = argc > 2 ? strtol(argv[2], 0, 10) : 3;
  if (nt < 1 || nt > 64) return 2;
  threads[0] = pthread_self();
  for (long i = 1; i < nt; i++) {
    if (pthread_create(&threads[i], 0, run, (void *)i)) return 1;
  }
  go = 1;
  run((void *)0);
  return 0;
}
