/*
 * live-pages DATAFILE: a process whose page tables have a known shape, for the
 * page-selection tests of live dump (pagemap and PAGEMAP_SCAN must agree).
 *
 *  anon   64 private anonymous pages; pages 0-2, 5 and 10-19 written
 *  file   16 pages of DATAFILE mapped private; all read, pages 1 and 3 written
 *         (copied on write), so only those two belong in an image
 *  shared 8 shared anonymous pages; pages 2-3 written
 * Prints "READY pid=P anon=0xA file=0xF shared=0xS" and waits in pause().
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: live-pages DATAFILE\n"); return 2; }
  for (int fd = 3; fd < 1024; fd++) close(fd);
  char *anon = mmap(0, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  madvise(anon, 64 * PG, MADV_NOHUGEPAGE);
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0) { perror("open"); return 1; }
  char *file = mmap(0, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  close(fd);
  char *shared = mmap(0, 8 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (anon == MAP_FAILED || file == MAP_FAILED || shared == MAP_FAILED) { perror("mmap"); return 1; }
  int written[] = { 0, 1, 2, 5, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19 };
  for (unsigned i = 0; i < sizeof written / sizeof *written; i++) anon[written[i] * PG + 7] = (char)(i + 1);
  volatile char sum = 0;
  for (int i = 0; i < 16; i++) sum += file[i * PG];
  file[1 * PG] = 'x';
  file[3 * PG + 100] = 'y';
  shared[2 * PG] = 1;
  shared[3 * PG] = 2;
  printf("READY pid=%d anon=%p file=%p shared=%p\n", getpid(), (void *)anon, (void *)file, (void *)shared);
  fflush(stdout);
  for (;;) pause();
}
