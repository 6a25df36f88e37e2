/*
 * bigmem SIZE_MIB: a process with SIZE_MIB MiB of resident, non-zero anonymous
 * memory, the target of the dump, convert and restore benchmarks.
 *
 * 64-bit word i of the region holds pattern(i) = (i + 1) * 0x9E3779B97F4A7C15
 * (never zero, distinct per word), so no page is elided as zero and any page
 * can be checked from its address. Closes every inherited descriptor above 2
 * (a pipe inherited from the shell would make `crimg dump` refuse the process).
 * The region asks for transparent huge pages. Prints one line
 *   READY pid=P addr=0xA len=L
 * then waits in pause() until killed.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: bigmem SIZE_MIB\n"); return 2; }
  for (int fd = 3; fd < 4096; fd++) close(fd);
  size_t len = (size_t)strtoull(argv[1], 0, 10) << 20;
  uint64_t *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) { perror("mmap"); return 1; }
  madvise(p, len, MADV_HUGEPAGE); /* fewer page faults when filling (they are slow in VMs) */
  for (size_t i = 0; i < len / 8; i++) p[i] = (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ull;
  printf("READY pid=%d addr=0x%lx len=%zu\n", getpid(), (unsigned long)p, len);
  fflush(stdout);
  for (;;) pause();
}
