/*
 * A non-Python reader for the first-epoch tests: reads every file named in each
 * list (one list an epoch), in the list's order, a few milliseconds of "compute"
 * after each, and reports per epoch how many were already resident before it
 * opened them. Residency is measured with cachestat(2) through a probe path
 * PROBE_DIR/<epoch>/<index> (a symlink in a folder gofetch does not trace), so the
 * probe is no access gofetch sees. Of the files not wholly resident it also counts
 * those with pages the kernel reclaimed (cachestat's evicted: reclaim leaves shadow
 * entries, fadvise(DONTNEED) and invalidation leave none): brought in before the
 * open, by the prefetcher, and taken back by memory pressure or proactive reclaim.
 *
 *   cold_reader PROBE_DIR STEP_MS LIST...  ->  prints "warm N of M, reclaimed R" per list
 *
 * With COLD_READER_DROP=1 in the environment, each file is dropped from the page
 * cache once read (POSIX_FADV_DONTNEED), as memory pressure would drop it when the
 * data set is larger than the memory: every epoch starts cold.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct range { uint64_t off, len; };
struct cstat { uint64_t cache, dirty, writeback, evicted, recently_evicted; };

/* 1: every page resident; 0: not, and *reclaimed says whether the kernel took some back. */
static int resident(const char *probe, int *reclaimed)
{
    *reclaimed = 0;
    int fd = open(probe, O_RDONLY);
    if (fd < 0)
        return -1;
    struct stat st;
    struct range r = {0, 0};
    struct cstat cs = {0};
    int known = fstat(fd, &st) == 0 && syscall(451, fd, &r, &cs, 0) == 0;
    int full = known && cs.cache >= (uint64_t)(st.st_size + 4095) / 4096;
    *reclaimed = known && !full && cs.evicted > 0;
    close(fd);
    return full;
}

static int read_epoch(const char *listing, const char *probes, int epoch, long step_ms, int drop)
{
    FILE *list = fopen(listing, "r");
    if (!list)
        return 2;
    static char buf[1 << 16], line[4096], probe[4096];
    int warm = 0, reclaimed = 0, total = 0;
    while (fgets(line, sizeof line, list)) {
        line[strcspn(line, "\n")] = 0;
        if (!*line)
            continue;
        snprintf(probe, sizeof probe, "%s/%d/%d", probes, epoch, total);
        int taken;
        warm += resident(probe, &taken) == 1;
        reclaimed += taken;
        total++;
        int fd = open(line, O_RDONLY);
        if (fd < 0)
            return 3;
        while (read(fd, buf, sizeof buf) > 0)
            ;
        if (drop)
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
        struct timespec ts = {0, step_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    fclose(list);
    printf("warm %d of %d, reclaimed %d\n", warm, total, reclaimed);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    long step_ms = atol(argv[2]);
    const char *drop = getenv("COLD_READER_DROP");
    for (int i = 3; i < argc; i++) {
        int status = read_epoch(argv[i], argv[1], i - 3, step_ms, drop && !strcmp(drop, "1"));
        if (status)
            return status;
    }
    return 0;
}
