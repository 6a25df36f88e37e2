/*
 * zdtm-style test of the process attributes crimg saves (src/kinds/proc-attrs): sets them, writes READY to OUT,
 * waits for SIGUSR1 (sent after the restore), then checks each attribute against what it set and writes PASS, or
 * FAIL with what differs.
 *
 *   zdtm-proc-attrs OUT
 *
 * Attributes: umask 027, oom_score_adj 345, not dumpable, THP disabled, child subreaper, timer slack 123456 ns.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t go;
static void on_usr1(int s) { (void)s; go = 1; }

static long read_long(const char *path) {
  char buf[64] = { 0 };
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -999999;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n > 0 ? strtol(buf, 0, 10) : -999999;
}

int main(int argc, char **argv) {
  syscall(SYS_close_range, 3, ~0U, 0);
  FILE *out = fopen(argc > 1 ? argv[1] : "/dev/stdout", "a");
  setvbuf(out, 0, _IOLBF, 0);
  struct sigaction sa = { .sa_handler = on_usr1 };
  sigaction(SIGUSR1, &sa, 0);
  umask(027);
  int fd = open("/proc/self/oom_score_adj", O_WRONLY);
  if (fd < 0 || write(fd, "345", 3) != 3) { fprintf(out, "SETUP oom_score_adj\n"); return 1; }
  close(fd);
  if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) || prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) || prctl(PR_SET_TIMERSLACK, 123456, 0, 0, 0)
      || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) {
    fprintf(out, "SETUP prctl\n");
    return 1;
  }
  fprintf(out, "READY %d\n", getpid());
  while (!go) pause();
  char bad[512] = "";
  mode_t m = umask(0);
  if (m != 027) snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " umask=%o", m);
  long oom = read_long("/proc/self/oom_score_adj");
  if (oom != 345) snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " oom_score_adj=%ld", oom);
  int v = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  if (v != 0) snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " dumpable=%d", v);
  v = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
  if (v != 1) snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " thp_disable=%d", v);
  int sub = -1;
  prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0);
  if (sub != 1) snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " subreaper=%d", sub);
  v = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
  if (v != 123456) snprintf(bad + strlen(bad), sizeof bad - strlen(bad), " timerslack=%d", v);
  fprintf(out, bad[0] ? "FAIL%s\n" : "PASS\n", bad);
  return 0;
}
