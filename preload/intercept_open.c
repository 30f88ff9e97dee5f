/* Wrappers of the open family: open, openat, openat2 and their fortified forms. */
#include "intercept.h"

static size_t absolute_path(int dirfd, const char *path, char *out, bool *truncated)
{
    size_t n = 0;
    *truncated = false;
    if (path[0] != '/') {
        if (dirfd == AT_FDCWD) {
            if (!getcwd(out, GF_MAX_PATH + 1))
                return 0;
            n = strlen(out);
        } else {
            char link[32] = "/proc/self/fd/";
            fmt_uint(link + 14, (unsigned long)dirfd);
            ssize_t k = readlink(link, out, GF_MAX_PATH);
            if (k <= 0)
                return 0;
            n = (size_t)k;
            if (n == GF_MAX_PATH)
                *truncated = true;
        }
        if (n == 0 || out[0] != '/')
            return 0;                    /* "(unreachable)", "socket:[...]" and the like */
        while (path[0] == '.' && path[1] == '/') {
            path += 2;
            while (*path == '/')
                path++;
        }
        if (n < GF_MAX_PATH && out[n - 1] != '/')
            out[n++] = '/';
    }
    size_t len = strlen(path);
    if (n + len > GF_MAX_PATH) {
        len = GF_MAX_PATH - n;
        *truncated = true;
    }
    memcpy(out + n, path, len);
    n += len;
    out[n] = '\0';
    return n;
}

static inline bool open_flags_readable(uint64_t flags)
{
    return (flags & O_ACCMODE) != O_WRONLY && !(flags & O_DIRECTORY) && !(flags & O_PATH);
}

/* After a successful open: decide whether to track fd and say so. */
void note_open(struct tstate *t, int dirfd, const char *path, int fd, uint64_t flags,
               uint64_t t0, uint8_t rflags)
{
    uint64_t t1 = mono_ns();
    int saved = errno;
    guard_on(t);
    fd_forget(fd);                       /* the number may have been closed behind our back */
    if (path && open_flags_readable(flags)) {
        char abs[GF_MAX_PATH + 1];
        bool truncated;
        size_t len = absolute_path(dirfd, path, abs, &truncated);
        struct stat st;
        if (len && path_wanted(abs, len) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
            if (fd < FD_TABLE_SIZE) {
                fd_track(fd, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
                bool warmed = open_readahead(fd, (uint64_t)st.st_dev, (uint64_t)st.st_size);
                struct gf_record r = {
                    .kind = GF_KIND_OPEN,
                    .flags = (uint8_t)(rflags | (truncated ? GF_FLAG_PATH_TRUNCATED : 0)
                                       | (warmed ? GF_FLAG_WARMED_AT_OPEN : 0)),
                    .fd = fd, .time_ns = t0, .dev = (uint64_t)st.st_dev, .ino = (uint64_t)st.st_ino,
                    .offset = flags, .length = (uint64_t)st.st_size,
                    .duration_ns = saturate32(t1 - t0),
                };
                emit(t, &r, abs, len);
            } else {
                drop(1);
            }
        }
    }
    guard_off(t);
    errno = saved;
}

/* ------------------------------------------------------------------------ */
/* open family                                                               */
/* ------------------------------------------------------------------------ */

enum open_variant {
    V_OPEN, V_OPEN64, V_OPENAT, V_OPENAT64, V_OPEN_2, V_OPEN64_2, V_OPENAT_2, V_OPENAT64_2,
};

static int call_open(enum open_variant v, int dirfd, const char *path, int flags, mode_t mode)
{
    switch (v) {
    case V_OPEN: if (r_open) return r_open(path, flags, mode); break;
    case V_OPEN64: if (r_open64) return r_open64(path, flags, mode); break;
    case V_OPENAT: if (r_openat) return r_openat(dirfd, path, flags, mode); break;
    case V_OPENAT64: if (r_openat64) return r_openat64(dirfd, path, flags, mode); break;
    case V_OPEN_2: if (r___open_2) return r___open_2(path, flags); break;
    case V_OPEN64_2: if (r___open64_2) return r___open64_2(path, flags); break;
    case V_OPENAT_2: if (r___openat_2) return r___openat_2(dirfd, path, flags); break;
    case V_OPENAT64_2: if (r___openat64_2) return r___openat64_2(dirfd, path, flags); break;
    }
    if (v == V_OPEN || v == V_OPEN64 || v == V_OPEN_2 || v == V_OPEN64_2)
        dirfd = AT_FDCWD;
    return (int)syscall(SYS_openat, dirfd, path, flags | O_LARGEFILE, mode);
}

static int open_common(enum open_variant v, int dirfd, const char *path, int flags, mode_t mode)
{
    struct tstate *t = shim_enter();
    if (!t)
        return call_open(v, dirfd, path, flags, mode);
    uint64_t t0 = mono_ns();
    int fd = call_open(v, dirfd, path, flags, mode);
    if (fd >= 0)
        note_open(t, dirfd, path, fd, (uint64_t)(unsigned)flags, t0, 0);
    return fd;
}

static inline bool needs_mode(int flags)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

#define OPEN_MODE(flags, last) \
    mode_t mode = 0; \
    if (needs_mode(flags)) { \
        va_list ap; \
        va_start(ap, last); \
        mode = va_arg(ap, mode_t); \
        va_end(ap); \
    }

EXPORT int open(const char *path, int flags, ...)
{
    OPEN_MODE(flags, flags);
    return open_common(V_OPEN, AT_FDCWD, path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...)
{
    OPEN_MODE(flags, flags);
    return open_common(V_OPEN64, AT_FDCWD, path, flags, mode);
}

EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    OPEN_MODE(flags, flags);
    return open_common(V_OPENAT, dirfd, path, flags, mode);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    OPEN_MODE(flags, flags);
    return open_common(V_OPENAT64, dirfd, path, flags, mode);
}

/* _FORTIFY_SOURCE builds call these instead of open/openat. */
EXPORT int __open_2(const char *path, int flags)
{
    return open_common(V_OPEN_2, AT_FDCWD, path, flags, 0);
}

EXPORT int __open64_2(const char *path, int flags)
{
    return open_common(V_OPEN64_2, AT_FDCWD, path, flags, 0);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
    return open_common(V_OPENAT_2, dirfd, path, flags, 0);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    return open_common(V_OPENAT64_2, dirfd, path, flags, 0);
}

/*
 * glibc 2.36 has no openat2() wrapper; programs built against a newer glibc
 * (or that look it up with dlsym) still get traced.
 */
EXPORT int openat2(int dirfd, const char *path, struct open_how *how, size_t size)
{
    struct tstate *t = shim_enter();
    uint64_t t0 = t ? mono_ns() : 0;
    int fd = r_openat2 ? r_openat2(dirfd, path, how, size)
                       : (int)syscall(SYS_openat2, dirfd, path, how, size);
    if (t && fd >= 0 && how && size >= sizeof how->flags)
        note_open(t, dirfd, path, fd, how->flags, t0, 0);
    return fd;
}

/* ------------------------------------------------------------------------ */
/* read family                                                               */
/* ------------------------------------------------------------------------ */
