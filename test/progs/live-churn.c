/*
 * Target for freezing while threads come and go: a main thread keeps creating
 * short-lived threads (each spins briefly, maybe creates another one, then
 * exits), forever. Prints "READY pid=P" once running and "ROUND n" every 1000
 * threads created. Exits with status 5 if pthread_create or pthread_join fails.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *leaf(void *arg) {
  volatile unsigned long x = 0;
  for (unsigned long i = 0; i < 20000; i++) x += i;
  (void)arg;
  return NULL;
}

static void *mid(void *arg) {
  pthread_t t;
  if (pthread_create(&t, NULL, leaf, arg) != 0 || pthread_join(t, NULL) != 0) exit(5);
  return NULL;
}

int main(void) {
  close_range(3, ~0U, 0);
  printf("READY pid=%d\n", (int)getpid());
  fflush(stdout);
  for (unsigned long n = 1;; n++) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) if (pthread_create(&t[i], NULL, i & 1 ? mid : leaf, NULL) != 0) exit(5);
    for (int i = 0; i < 4; i++) if (pthread_join(t[i], NULL) != 0) exit(5);
    if (n % 250 == 0) { printf("ROUND %lu\n", n / 250); fflush(stdout); }
  }
}
