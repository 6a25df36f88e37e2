/*
 * Test program for restoring multi-threaded processes.
 *
 *   restore-threads DIR [NTHREADS]
 *
 * NTHREADS threads in total (default 4, the main thread included). Thread i
 * keeps its own counter in a __thread variable and on its own stack, and every
 * ~2 ms appends a fixed-width line "NNNNNNNN i\n" to DIR/t<i> (its own fd). Each
 * thread checks that its two copies agree (so its fs_base and stack are its own)
 * and aborts otherwise. Kill it with SIGKILL.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

static __thread unsigned long counter;
static char *dir;

static void *run(void *arg) {
  long i = (long)arg;
  char path[4096];
  snprintf(path, sizeof path, "%s/t%ld", dir, i);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) { perror("open"); exit(1); }
  volatile unsigned long mine = 0;
  for (;;) {
    counter++;
    mine++;
    if (counter != mine) abort();
    char line[32];
    int n = snprintf(line, sizeof line, "%08lu %ld\n", counter, i);
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
  long nt = argc > 2 ? strtol(argv[2], 0, 10) : 4;
  for (long i = 1; i < nt; i++) {
    pthread_t t;
    if (pthread_create(&t, 0, run, (void *)i)) return 1;
  }
  run((void *)0);
  return 0;
}
