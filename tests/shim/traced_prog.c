/*
 * A C program for the preload tests: exercises the entry points Python does
 * not reach (stdio, fortified wrappers, openat with a dirfd, openat2) and the
 * ways a process can end (exit, _exit, _Exit, thread exit, raw exit_group).
 * Built twice by the tests: plain, and with -D_FORTIFY_SOURCE=2 so open/read/
 * pread/fread become __open_2/__read_chk/__pread_chk/__fread_chk.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile int rdonly = O_RDONLY;   /* not a constant: makes fortify pick __open_2 */
static volatile size_t chunk = 1000;     /* not a constant: makes fortify pick the _chk reads */

static int die(const char *what)
{
    perror(what);
    exit(2);
}

/* dir must contain data.bin (>= 4000 bytes) and sub/rel.bin (>= 100 bytes). */
static void io(const char *dir)
{
    char buf[4096];
    if (chdir(dir) != 0) die("chdir");

    FILE *f = fopen("data.bin", "rb");               /* relative path, stdio */
    if (!f) die("fopen");
    for (int i = 0; i < 3; i++)
        if (fread(buf, 1, chunk, f) != chunk) die("fread");
    if (fread_unlocked(buf, 10, chunk / 10, f) != chunk / 10) die("fread_unlocked");
    fclose(f);

    int fd = open("./sub/rel.bin", rdonly);          /* "./" prefix */
    if (fd < 0) die("open");
    if (read(fd, buf, chunk) <= 0) die("read");
    if (pread(fd, buf, chunk / 20, 10) != 50) die("pread");
    close(fd);

    int dfd = open("sub", O_RDONLY | O_DIRECTORY);   /* a directory: not tracked */
    if (dfd < 0) die("open dir");
    fd = openat(dfd, "rel.bin", rdonly);              /* relative to a dirfd */
    if (fd < 0) die("openat");
    if (read(fd, buf, 7) != 7) die("read 7");
    close(fd);

    /* glibc 2.36 has no openat2(); the shim defines one, so look it up at run time. */
    int (*o2)(int, const char *, struct open_how *, size_t) =
        (int (*)(int, const char *, struct open_how *, size_t))dlsym(RTLD_DEFAULT, "openat2");
    if (o2) {
        struct open_how how = {.flags = O_RDONLY};
        fd = o2(dfd, "rel.bin", &how, sizeof how);
        if (fd < 0) die("openat2");
        if (read(fd, buf, 3) != 3) die("read 3");
        close(fd);
    }
    close(dfd);
    printf("openat2=%d\n", o2 != NULL);
}

static void read_some(const char *path)
{
    char buf[100];
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("open");
    if (read(fd, buf, sizeof buf) != sizeof buf) die("read");
    /* no close: the events stay buffered until the exit path under test sends them */
}

static void *thread_main(void *path)
{
    read_some(path);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s io|exit|_exit|_Exit|thread|raw PATH\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1], *path = argv[2];
    if (strcmp(mode, "io") == 0) {
        io(path);
        return 0;
    }
    if (strcmp(mode, "thread") == 0) {
        pthread_t th;
        pthread_create(&th, NULL, thread_main, (void *)path);
        pthread_join(th, NULL);
        fflush(stdout);
        syscall(SYS_exit_group, 0);                  /* skips every flush but the thread's */
    }
    read_some(path);
    fflush(stdout);
    if (strcmp(mode, "exit") == 0) exit(0);
    if (strcmp(mode, "_exit") == 0) _exit(0);
    if (strcmp(mode, "_Exit") == 0) _Exit(0);
    if (strcmp(mode, "raw") == 0) syscall(SYS_exit_group, 0);
    return 2;
}
