/* Wrappers of stdio: fopen, fread, fclose. */
#include "intercept.h"

static uint64_t fopen_flags(const char *mode)
{
    uint64_t acc = O_RDONLY, extra = 0;
    switch (mode[0]) {
    case 'w': acc = O_WRONLY; extra = O_CREAT | O_TRUNC; break;
    case 'a': acc = O_WRONLY; extra = O_CREAT | O_APPEND; break;
    default: break;
    }
    for (const char *p = mode + 1; *p && *p != ',' && p < mode + 8; p++) {
        if (*p == '+') acc = O_RDWR;
        else if (*p == 'e') extra |= O_CLOEXEC;
        else if (*p == 'x') extra |= O_EXCL;
    }
    return acc | extra;
}

static FILE *fopen_common(FILE *(*real)(const char *, const char *), const char *path, const char *mode)
{
    struct tstate *t = shim_enter();
    if (!t)
        return real(path, mode);
    uint64_t t0 = mono_ns();
    guard_on(t);
    FILE *f = real(path, mode);
    guard_off(t);
    if (f && path && mode) {
        int saved = errno;
        int fd = fileno(f);
        errno = saved;
        if (fd >= 0)
            note_open(t, AT_FDCWD, path, fd, fopen_flags(mode), t0, GF_FLAG_STDIO);
    }
    return f;
}

/* stdio has no system call to fall back to: a wrapper that runs before
 * resolve_all() (or re-entered from it) resolves its own function on the spot. */
EXPORT FILE *fopen(const char *path, const char *mode)
{
    RESOLVE(fopen);
    return fopen_common(r_fopen, path, mode);
}

EXPORT FILE *fopen64(const char *path, const char *mode)
{
    RESOLVE(fopen64);
    return fopen_common(r_fopen64, path, mode);
}

/* A tracked FILE* with somewhere to send its events; *offset is ftello() before the read. */
static struct tstate *enter_stdio(FILE *f, int *fd, struct fdinfo *fi, uint64_t *offset)
{
    if (!f)
        return NULL;
    struct tstate *t = shim_enter();
    if (!t)
        return NULL;
    int saved = errno;
    *fd = fileno(f);
    if (!fd_lookup(*fd, fi)) {
        errno = saved;
        return NULL;
    }
    if (!link_accepting()) {
        drop(1);
        errno = saved;
        return NULL;
    }
    guard_on(t);
    off_t pos = ftello(f);
    guard_off(t);
    *offset = pos >= 0 ? (uint64_t)pos : OFFSET_UNKNOWN;
    errno = saved;
    return t;
}

static void note_fread(struct tstate *t, int fd, const struct fdinfo *fi, uint64_t t0, uint64_t offset,
                       size_t items, size_t size, FILE *f)
{
    /* 0 items is end of file (recorded, length 0) or an error (not an event). */
    if (items == 0) {
        int saved = errno;
        bool failed = ferror(f);
        errno = saved;
        if (failed)
            return;
    }
    note_io(t, GF_KIND_READ, GF_FLAG_STDIO, fd, fi, t0, offset, (uint64_t)items * size);
}

#define FREAD_BODY(name, call) \
    RESOLVE(name); \
    int fd; \
    struct fdinfo fi; \
    uint64_t offset; \
    struct tstate *t = enter_stdio(f, &fd, &fi, &offset); \
    if (!t) \
        return call; \
    uint64_t t0 = mono_ns(); \
    guard_on(t); \
    size_t r = call; \
    guard_off(t); \
    note_fread(t, fd, &fi, t0, offset, r, size, f); \
    return r;

EXPORT size_t fread(void *ptr, size_t size, size_t n, FILE *f)
{
    FREAD_BODY(fread, r_fread(ptr, size, n, f))
}

EXPORT size_t fread_unlocked(void *ptr, size_t size, size_t n, FILE *f)
{
    FREAD_BODY(fread_unlocked, r_fread_unlocked(ptr, size, n, f))
}

EXPORT size_t __fread_chk(void *ptr, size_t ptrlen, size_t size, size_t n, FILE *f)
{
    FREAD_BODY(__fread_chk, r___fread_chk(ptr, ptrlen, size, n, f))
}

EXPORT size_t __fread_unlocked_chk(void *ptr, size_t ptrlen, size_t size, size_t n, FILE *f)
{
    FREAD_BODY(__fread_unlocked_chk, r___fread_unlocked_chk(ptr, ptrlen, size, n, f))
}

EXPORT int fclose(FILE *f)
{
    RESOLVE(fclose);
    int (*real)(FILE *) = r_fclose;
    struct tstate *t = f ? shim_enter() : NULL;
    if (!t)
        return real(f);
    int saved = errno;
    int fd = fileno(f);
    errno = saved;
    struct fdinfo fi;
    if (!fd_lookup(fd, &fi) || in_vfork_child())
        return real(f);
    fd_forget(fd);
    uint64_t t0 = mono_ns();
    guard_on(t);
    int r = real(f);
    guard_off(t);
    note_close(t, fd, &fi, t0, GF_FLAG_STDIO);
    return r;
}

/* ------------------------------------------------------------------------ */
/* _exit                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * _exit skips atexit handlers and destructors, and it is how every
 * multiprocessing child (and any os._exit) ends: without this, a data-loader
 * worker's last events would die with it.
 */
