/* Wrappers of mmap, close, close_range, dup2 and dup3. */
#include "intercept.h"

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = NULL;
    if (fd >= 0 && !(flags & MAP_ANONYMOUS))
        t = enter_fd(fd, &fi, &t0);
    else
        shim_enter();                    /* not a file: only the age check applies */
    if (!t)
        return sys_mmap(addr, len, prot, flags, fd, off);
    void *p = sys_mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED)
        note_io(t, GF_KIND_MMAP, 0, fd, &fi, t0, (uint64_t)off, (uint64_t)len);
    return p;
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
    struct fdinfo fi;
    uint64_t t0 = 0;
    struct tstate *t = NULL;
    if (fd >= 0 && !(flags & MAP_ANONYMOUS))
        t = enter_fd(fd, &fi, &t0);
    else
        shim_enter();                    /* not a file: only the age check applies */
    void *p = r_mmap64 ? r_mmap64(addr, len, prot, flags, fd, off)
                       : sys_mmap(addr, len, prot, flags, fd, off);
    if (t && p != MAP_FAILED)
        note_io(t, GF_KIND_MMAP, 0, fd, &fi, t0, (uint64_t)off, (uint64_t)len);
    return p;
}

/* ------------------------------------------------------------------------ */
/* close and friends                                                         */
/* ------------------------------------------------------------------------ */

EXPORT int close(int fd)
{
    struct tstate *t = shim_enter();
    struct fdinfo fi;
    if (!t)
        return sys_close(fd);
    if (unlikely(fd >= 0 && fd == atomic_load_explicit(&g_sock_fd, memory_order_relaxed))) {
        if (!in_vfork_child())
            sock_forget();
        return sys_close(fd);
    }
    if (!fd_lookup(fd, &fi) || in_vfork_child())
        return sys_close(fd);
    fd_forget(fd);
    uint64_t t0 = mono_ns();
    int r = sys_close(fd);
    note_close(t, fd, &fi, t0, 0);
    return r;
}

/* fds in [first, last] stop being what we track (closed or replaced). */
static void forget_range(struct tstate *t, unsigned first, unsigned last, uint64_t t0)
{
    int sock = atomic_load(&g_sock_fd);
    if (sock >= 0 && (unsigned)sock >= first && (unsigned)sock <= last)
        sock_forget();
    if (last >= FD_TABLE_SIZE)
        last = FD_TABLE_SIZE - 1;
    for (unsigned fd = first; fd <= last && fd < FD_TABLE_SIZE; fd++) {
        struct fdinfo fi;
        if (fd_lookup((int)fd, &fi)) {
            fd_forget((int)fd);
            note_close(t, (int)fd, &fi, t0, 0);
        }
    }
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
    struct tstate *t = shim_enter();
    uint64_t t0 = t ? mono_ns() : 0;
    int r = r_close_range ? r_close_range(first, last, flags)
                          : (int)syscall(SYS_close_range, first, last, flags);
    if (t && r == 0 && !(flags & CLOSE_RANGE_CLOEXEC) && first <= last && !in_vfork_child()) {
        int saved = errno;
        forget_range(t, first, last, t0);
        errno = saved;
    }
    return r;
}

/* newfd now refers to oldfd's file: carry the tracking over, or drop it. */
static void note_dup(struct tstate *t, int oldfd, int newfd, uint64_t t0)
{
    if (oldfd == newfd || (unsigned)newfd >= FD_TABLE_SIZE || in_vfork_child())
        return;
    int saved = errno;
    forget_range(t, (unsigned)newfd, (unsigned)newfd, t0);
    struct fdinfo fi;
    if (fd_lookup(oldfd, &fi))
        fd_track(newfd, fi.dev, fi.ino);
    errno = saved;
}

EXPORT int dup2(int oldfd, int newfd)
{
    struct tstate *t = shim_enter();
    uint64_t t0 = t ? mono_ns() : 0;
    int r = r_dup2 ? r_dup2(oldfd, newfd) : (int)syscall(SYS_dup2, oldfd, newfd);
    if (t && r >= 0)
        note_dup(t, oldfd, r, t0);
    return r;
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
    struct tstate *t = shim_enter();
    uint64_t t0 = t ? mono_ns() : 0;
    int r = sys_dup3(oldfd, newfd, flags);
    if (t && r >= 0)
        note_dup(t, oldfd, r, t0);
    return r;
}

/* ------------------------------------------------------------------------ */
/* stdio                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * glibc's stdio calls its internal __open/__read/__close, which no preload can
 * see, so FILE* traffic has to be caught at the stdio layer.
 */
