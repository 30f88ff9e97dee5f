/* Wrappers of the read family: read, pread, readv, preadv and their variants. */
#include "intercept.h"

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = enter_fd(fd, &fi, &t0);
    if (!t)
        return sys_read(fd, buf, n);
    ssize_t r = sys_read(fd, buf, n);
    if (r >= 0)
        note_io(t, GF_KIND_READ, 0, fd, &fi, t0, OFFSET_FROM_POSITION, (uint64_t)r);
    return r;
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = enter_fd(fd, &fi, &t0);
    ssize_t r = r___read_chk ? r___read_chk(fd, buf, n, buflen) : sys_read(fd, buf, n);
    if (t && r >= 0)
        note_io(t, GF_KIND_READ, 0, fd, &fi, t0, OFFSET_FROM_POSITION, (uint64_t)r);
    return r;
}

EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = enter_fd(fd, &fi, &t0);
    if (!t)
        return sys_pread(fd, buf, n, off);
    ssize_t r = sys_pread(fd, buf, n, off);
    if (r >= 0)
        note_io(t, GF_KIND_READ, GF_FLAG_POSITIONAL, fd, &fi, t0, (uint64_t)off, (uint64_t)r);
    return r;
}

EXPORT ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = enter_fd(fd, &fi, &t0);
    ssize_t r = r_pread64 ? r_pread64(fd, buf, n, off) : sys_pread(fd, buf, n, off);
    if (t && r >= 0)
        note_io(t, GF_KIND_READ, GF_FLAG_POSITIONAL, fd, &fi, t0, (uint64_t)off, (uint64_t)r);
    return r;
}

EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = enter_fd(fd, &fi, &t0);
    ssize_t r = r___pread_chk ? r___pread_chk(fd, buf, n, off, buflen) : sys_pread(fd, buf, n, off);
    if (t && r >= 0)
        note_io(t, GF_KIND_READ, GF_FLAG_POSITIONAL, fd, &fi, t0, (uint64_t)off, (uint64_t)r);
    return r;
}

EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t off, size_t buflen)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = enter_fd(fd, &fi, &t0);
    ssize_t r = r___pread64_chk ? r___pread64_chk(fd, buf, n, off, buflen) : sys_pread(fd, buf, n, off);
    if (t && r >= 0)
        note_io(t, GF_KIND_READ, GF_FLAG_POSITIONAL, fd, &fi, t0, (uint64_t)off, (uint64_t)r);
    return r;
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = enter_fd(fd, &fi, &t0);
    if (!t)
        return sys_readv(fd, iov, cnt);
    ssize_t r = sys_readv(fd, iov, cnt);
    if (r >= 0)
        note_io(t, GF_KIND_READ, GF_FLAG_VECTORED, fd, &fi, t0, OFFSET_FROM_POSITION, (uint64_t)r);
    return r;
}

/* preadv2 with offset -1 reads at (and advances) the file position, like readv. */
static void note_preadv(struct tstate *t, int fd, const struct fdinfo *fi, uint64_t t0, off_t off, ssize_t r)
{
    if (off == -1)
        note_io(t, GF_KIND_READ, GF_FLAG_VECTORED, fd, fi, t0, OFFSET_FROM_POSITION, (uint64_t)r);
    else
        note_io(t, GF_KIND_READ, GF_FLAG_VECTORED | GF_FLAG_POSITIONAL, fd, fi, t0, (uint64_t)off,
                (uint64_t)r);
}

EXPORT ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = enter_fd(fd, &fi, &t0);
    ssize_t r = r_preadv ? r_preadv(fd, iov, cnt, off) : sys_preadv2(fd, iov, cnt, off, 0);
    if (t && r >= 0)
        note_io(t, GF_KIND_READ, GF_FLAG_VECTORED | GF_FLAG_POSITIONAL, fd, &fi, t0, (uint64_t)off,
                (uint64_t)r);
    return r;
}

EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = enter_fd(fd, &fi, &t0);
    ssize_t r = r_preadv64 ? r_preadv64(fd, iov, cnt, off) : sys_preadv2(fd, iov, cnt, off, 0);
    if (t && r >= 0)
        note_io(t, GF_KIND_READ, GF_FLAG_VECTORED | GF_FLAG_POSITIONAL, fd, &fi, t0, (uint64_t)off,
                (uint64_t)r);
    return r;
}

EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = enter_fd(fd, &fi, &t0);
    ssize_t r = r_preadv2 ? r_preadv2(fd, iov, cnt, off, flags) : sys_preadv2(fd, iov, cnt, off, flags);
    if (t && r >= 0)
        note_preadv(t, fd, &fi, t0, off, r);
    return r;
}

/* What CPython's os.preadv() calls. */
EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int cnt, off64_t off, int flags)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = enter_fd(fd, &fi, &t0);
    ssize_t r = r_preadv64v2 ? r_preadv64v2(fd, iov, cnt, off, flags)
                             : sys_preadv2(fd, iov, cnt, off, flags);
    if (t && r >= 0)
        note_preadv(t, fd, &fi, t0, off, r);
    return r;
}

/* ------------------------------------------------------------------------ */
/* mmap                                                                      */
/* ------------------------------------------------------------------------ */
