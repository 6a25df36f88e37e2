/*
 * Test program for restore.
 *
 *   restore-counter OUT IN [HEAP_KIB]
 *
 * Keeps an incrementing counter, an open input file it reads 8 bytes at a time
 * (so its position advances by 8 per step) and a heap buffer filled with a known
 * pseudo-random pattern. Every ~3 ms it appends one fixed-width line to OUT
 * (opened O_WRONLY|O_TRUNC, written with write(2) at the file position):
 *
 *   NNNNNNNN PPPPPPPPPP VVVVVVVVVVVVVVVV CCCCCCCCCCCCCCCC\n
 *
 * N = counter (1, 2, ...), P = position of IN after the read (decimal), V = the 8
 * bytes read (little-endian u64, hex), C = FNV-1a-64 of the heap buffer computed
 * afresh each step (hex). The counter lives in a __thread variable (so the line
 * depends on fs_base being right) and a copy in .bss. Sleep interruptions (EINTR)
 * are ignored. Kill it with SIGKILL.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

static __thread unsigned long tls_counter;
static unsigned long bss_counter;

static uint64_t fnv(const unsigned char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ull; }
  return h;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: %s OUT IN [HEAP_KIB]\n", argv[0]); return 2; }
  syscall(SYS_close_range, 3, ~0U, 0); /* inherit no stray fds from the test runner */
  size_t heap = (argc > 3 ? strtoul(argv[3], 0, 10) : 1024) * 1024;
  int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int in = open(argv[2], O_RDONLY);
  if (out < 0 || in < 0) { perror("open"); return 1; }
  unsigned char *buf = malloc(heap);
  if (!buf) return 1;
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < heap; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; buf[i] = (unsigned char)x; }
  for (;;) {
    uint64_t v = 0;
    if (read(in, &v, 8) != 8) { lseek(in, 0, SEEK_SET); continue; }
    off_t pos = lseek(in, 0, SEEK_CUR);
    tls_counter++;
    bss_counter++;
    if (tls_counter != bss_counter) abort();
    char line[64];
    int n = snprintf(line, sizeof line, "%08lu %010ld %016llx %016llx\n", tls_counter, (long)pos,
                     (unsigned long long)v, (unsigned long long)fnv(buf, heap));
    if (write(out, line, n) != n) abort();
    struct timespec ts = {0, 3 * 1000 * 1000};
    nanosleep(&ts, 0);
  }
}
