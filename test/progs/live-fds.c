/*
 * Target for `crimg check`: holds one of each kind of file descriptor a restart
 * cannot rebuild, then sleeps until killed.
 *
 *   live-fds DIR
 *
 * fds: a socketpair, a pipe its child holds too, an eventfd and a signalfd (both saved), a memfd (also
 * mapped shared), a timerfd armed with TFD_TIMER_CANCEL_ON_SET, an epoll instance
 * watching another, an inotify instance watching DIR/gone, and DIR/gone opened and then deleted; and a
 * POSIX timer on the thread CPU-time clock (crimg restores other POSIX timers, not
 * that one). Prints "READY pid=P" when set up.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: live-fds DIR\n"); return 2; }
  close_range(3, ~0U, 0); /* nothing inherited: only the files set up here */
  int sv[2], p[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(p) < 0) { perror("socketpair/pipe"); return 1; }
  pid_t kid = fork(); /* holds the pipe too: not the task's own, so not saved */
  if (kid < 0) { perror("fork"); return 1; }
  if (kid == 0) { prctl(PR_SET_PDEATHSIG, SIGKILL); for (;;) pause(); }
  if (eventfd(7, 0) < 0) { perror("eventfd"); return 1; }
  int m = memfd_create("crimg-test", 0);
  if (m < 0 || ftruncate(m, 8192) < 0) { perror("memfd"); return 1; }
  char *map = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
  if (map == MAP_FAILED) { perror("mmap"); return 1; }
  strcpy(map, "memfd contents");
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  sigprocmask(SIG_BLOCK, &s, NULL);
  if (signalfd(-1, &s, 0) < 0) { perror("signalfd"); return 1; }
  int tf = timerfd_create(CLOCK_REALTIME, 0);
  struct itimerspec far = {{0, 0}, {4000000000, 0}}; /* cancelled when the clock is set: crimg cannot arm it so */
  if (tf < 0 || timerfd_settime(tf, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &far, NULL) < 0) { perror("timerfd"); return 1; }
  timer_t tm;
  if (timer_create(CLOCK_THREAD_CPUTIME_ID, NULL, &tm) < 0) { perror("timer_create"); return 1; }
  int ep1 = epoll_create1(0), ep2 = epoll_create1(0); /* one watching the other: crimg does not rebuild that */
  struct epoll_event ee = { .events = EPOLLIN };
  if (ep1 < 0 || ep2 < 0 || epoll_ctl(ep2, EPOLL_CTL_ADD, ep1, &ee) < 0) { perror("epoll"); return 1; }
  int in = inotify_init1(0);
  if (in < 0) { perror("inotify"); return 1; }
  char path[4096];
  snprintf(path, sizeof path, "%s/gone", argv[1]);
  int g = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  /* the inotify instance watches DIR/gone, deleted next: no path to it, so not saved */
  if (g < 0 || inotify_add_watch(in, path, IN_MODIFY) < 0 || unlink(path) < 0) { perror(path); return 1; }
  printf("READY pid=%d\n", (int)getpid());
  fflush(stdout);
  for (;;) pause();
}
