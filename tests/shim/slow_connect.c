/*
 * Preloaded before the shim in one test: holds the first connect() to the
 * socket named by SLOW_CONNECT_PATH for SLOW_CONNECT_MS milliseconds, as a
 * thread descheduled on a busy machine would be while it opens the link.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

static atomic_int held;

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real)
        real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    const char *path = getenv("SLOW_CONNECT_PATH");
    const char *ms = getenv("SLOW_CONNECT_MS");
    const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
    if (path && ms && addr && addr->sa_family == AF_UNIX && strcmp(un->sun_path, path) == 0 &&
        atomic_exchange(&held, 1) == 0) {
        long wait = atol(ms);
        struct timespec ts = {wait / 1000, (wait % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return real(fd, addr, len);
}
