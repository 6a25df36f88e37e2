/*
 * Target for `crimg dump --tree`: a parent and two children, each with a page of
 * its own pattern (byte i = (i + 37 * rank) & 0xff, rank 0 parent, 1 and 2 children),
 * all sleeping until killed. The parent prints "READY pid=P children=C1,C2 page=0x.."
 * (the page is at the same address in all three).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

static unsigned char page[4096] __attribute__((aligned(4096)));

static void fill(int rank) { for (int i = 0; i < 4096; i++) page[i] = (unsigned char)((i + 37 * rank) & 0xff); }

int main(void) {
  pid_t kids[2];
  close_range(3, ~0U, 0); /* nothing inherited: only the files set up here */
  for (int r = 1; r <= 2; r++) {
    pid_t c = fork();
    if (c < 0) { perror("fork"); return 1; }
    if (c == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      fill(r);
      for (;;) pause();
    }
    kids[r - 1] = c;
  }
  fill(0);
  printf("READY pid=%d children=%d,%d page=%p\n", (int)getpid(), (int)kids[0], (int)kids[1], (void *)page);
  fflush(stdout);
  for (;;) pause();
}
