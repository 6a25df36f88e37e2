/*
 * The live program of the golden images (test/golden): holds one of each kind of state crimg saves, then
 * prints READY and sleeps until killed. Built static so that its image is small.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static void on_usr1(int s) { (void)s; }

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "/tmp";
  char path[4096];
  snprintf(path, sizeof path, "%s/locked", dir);
  int lf = open(path, O_RDWR | O_CREAT, 0644);
  flock(lf, LOCK_EX);
  int p[2];
  pipe(p);
  write(p[1], "golden", 6);
  int sp[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
  write(sp[0], "pair", 4);
  int ev = eventfd(5, EFD_SEMAPHORE);
  int tf = timerfd_create(CLOCK_MONOTONIC, 0);
  struct itimerspec its = { { 100, 0 }, { 100, 0 } };
  timerfd_settime(tf, 0, &its, NULL);
  int ep = epoll_create1(0);
  struct epoll_event e = { .events = EPOLLIN, .data.u64 = 42 };
  epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e);
  int in = inotify_init1(0);
  snprintf(path, sizeof path, "%s/watched", dir);
  mkdir(path, 0755);
  inotify_add_watch(in, path, IN_CREATE);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  bind(ls, (struct sockaddr *)&a, sizeof a);
  listen(ls, 7);
  struct sigaction sa = { .sa_handler = on_usr1 };
  sigaction(SIGUSR1, &sa, NULL);
  struct itimerval iv = { { 50, 0 }, { 50, 0 } };
  setitimer(ITIMER_REAL, &iv, NULL);
  timer_t pt;
  struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1, .sigev_value.sival_int = 77 };
  timer_create(CLOCK_MONOTONIC, &sev, &pt);
  struct itimerspec pts = { { 30, 0 }, { 30, 0 } };
  timer_settime(pt, 0, &pts, NULL);
  static char alt[65536];
  stack_t ss = { .ss_sp = alt, .ss_size = sizeof alt };
  sigaltstack(&ss, NULL);
  (void)lf; (void)tf; (void)ep; (void)in; (void)ls;
  printf("READY pid=%d\n", getpid());
  fflush(stdout);
  for (;;) pause();
}
