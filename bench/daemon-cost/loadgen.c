/* The daemon-cost benchmark's job: opens, reads and closes cached files at a set
 * rate, so that the preload shim sends the daemon a steady stream of events.
 *
 *   loadgen DIR FILES FILES_PER_SECOND SECONDS
 *
 * Reads DIR/f000 … DIR/f<FILES-1> in a loop, each with two reads (the data, then
 * end of file, as Python's read() does): four events per file (open, read, read,
 * close). Paced by the clock: behind schedule, it does not sleep. Prints the files
 * done and the seconds taken. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: loadgen DIR FILES FILES_PER_SECOND SECONDS\n");
        return 2;
    }
    const char *dir = argv[1];
    long files = atol(argv[2]);
    double rate = atof(argv[3]), seconds = atof(argv[4]);
    if (files <= 0 || rate <= 0 || seconds <= 0) {
        fprintf(stderr, "loadgen: FILES, FILES_PER_SECOND and SECONDS must be positive\n");
        return 2;
    }
    static char buffer[1 << 16];
    char path[4096];
    double start = now();
    long done = 0;
    while (now() - start < seconds) {
        double due = start + (double)done / rate;
        double ahead = due - now();
        if (ahead > 0) {
            struct timespec t = {(time_t)ahead, (long)((ahead - (double)(time_t)ahead) * 1e9)};
            nanosleep(&t, NULL);
        }
        snprintf(path, sizeof path, "%s/f%03ld", dir, done % files);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            perror(path);
            return 1;
        }
        while (read(fd, buffer, sizeof buffer) > 0) {
        }
        close(fd);
        done++;
    }
    printf("%ld %.6f\n", done, now() - start);
    return 0;
}
