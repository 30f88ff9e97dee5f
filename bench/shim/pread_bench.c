/*
 * pread() cost with and without the preload shim.
 *
 * usage: pread_bench FILE [CALLS [CHUNKS]]
 * Does CALLS (default 1,000,000) pread(fd, buf, 4096, off) calls walking FILE
 * sequentially (wrapping), timed in CHUNKS (default 20) equal chunks; prints
 * the median, min and max per-call time over the chunks. The median of chunks
 * keeps a preemption or a flush burst in one chunk from moving the result.
 * The file should already be in the page cache (run.sh reads it first).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [CALLS [CHUNKS]]\n", argv[0]);
        return 2;
    }
    long calls = argc > 2 ? atol(argv[2]) : 1000000;
    int chunks = argc > 3 ? atoi(argv[3]) : 20;
    if (calls <= 0 || chunks <= 0 || chunks > 1000 || calls % chunks) {
        fprintf(stderr, "CALLS must be a positive multiple of CHUNKS (<= 1000)\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < 4096) {
        perror(argv[1]);
        return 1;
    }
    static char buf[4096];
    const off_t pages = st.st_size / 4096;
    off_t page = 0;
    long per_chunk = calls / chunks;
    double ns[1000];
    uint64_t sum = 0;

    /* Warm-up: page cache, TLB, the shim's lazy connect and buffer. */
    for (long i = 0; i < 10000; i++) {
        sum += (uint64_t)pread(fd, buf, sizeof buf, (page++ % pages) * 4096);
    }
    for (int c = 0; c < chunks; c++) {
        uint64_t t0 = now_ns();
        for (long i = 0; i < per_chunk; i++) {
            ssize_t r = pread(fd, buf, sizeof buf, (page++ % pages) * 4096);
            if (r != (ssize_t)sizeof buf) {
                perror("pread");
                return 1;
            }
            sum += (uint64_t)r + (unsigned char)buf[0];
        }
        ns[c] = (double)(now_ns() - t0) / (double)per_chunk;
    }
    close(fd);
    qsort(ns, (size_t)chunks, sizeof ns[0], cmp_double);
    double median = chunks % 2 ? ns[chunks / 2] : (ns[chunks / 2 - 1] + ns[chunks / 2]) / 2;
    printf("median_ns=%.1f min_ns=%.1f max_ns=%.1f calls=%ld chunks=%d checksum=%llu\n", median, ns[0],
           ns[chunks - 1], calls, chunks, (unsigned long long)(sum & 0xffff));
    return 0;
}
