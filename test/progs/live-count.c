/*
 * Target for `crimg run --on-signal`: counts to N (default 30), printing
 * "count I" every 50 ms, then exits 0. If SIGUSR2 ever reaches it, its handler
 * prints "GOT SIGUSR2" (crimg run must suppress the signal, so that line never
 * appears). Sleeps with nanosleep and reports "EINTR" if a sleep is interrupted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void on_usr2(int sig) {
  (void)sig;
  static const char m[] = "GOT SIGUSR2\n";
  ssize_t r = write(1, m, sizeof m - 1);
  (void)r;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 30;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("START pid=%d\n", (int)getpid());
  for (int i = 1; i <= n; i++) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    while (nanosleep(&ts, &ts) != 0) {
      if (errno == EINTR) printf("EINTR\n");
      else { perror("nanosleep"); return 1; }
    }
    printf("count %d\n", i);
  }
  printf("DONE\n");
  return 0;
}
