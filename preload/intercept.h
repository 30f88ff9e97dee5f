/* What every wrapper does before and after the real call. */
#pragma once
#include "shim.h"

/* Entry points shared by the wrappers                                       */
/* ------------------------------------------------------------------------ */

/* NULL: pass straight through (disabled, initialising, or re-entered). */
static inline struct tstate *shim_enter_quiet(void)
{
    if (unlikely(atomic_load_explicit(&g_init, memory_order_acquire) != INIT_DONE)) {
        lazy_init();
        if (atomic_load_explicit(&g_init, memory_order_acquire) != INIT_DONE)
            return NULL;
    }
    if (!g_active)
        return NULL;
    struct tstate *t = &ts;
    return t->busy ? NULL : t;
}

static inline struct tstate *shim_enter(void)
{
    struct tstate *t = shim_enter_quiet();
    if (t)
        age_check(t);
    return t;
}

/*
 * A tracked fd with somewhere to send its events, or NULL. *t0 is the call's
 * start time; the age check shares that clock read (clock_gettime is most of
 * what the shim costs on a hot read loop).
 */
static inline struct tstate *enter_fd(int fd, struct fdinfo *fi, uint64_t *t0)
{
    struct tstate *t = shim_enter_quiet();
    if (!t)
        return NULL;
    if (!fd_lookup(fd, fi)) {
        age_check(t);
        return NULL;
    }
    if (!link_accepting()) {
        age_check(t);
        drop(1);
        return NULL;
    }
    uint64_t now = mono_ns();
    if (unlikely(buf_pending(t->buf)) && age_flush_at(t, t->buf, now))
        now = mono_ns();
    *t0 = now;
    return t;
}

static inline void note_io(struct tstate *t, uint8_t kind, uint8_t flags, int fd, const struct fdinfo *fi,
                    uint64_t t0, uint64_t offset, uint64_t length)
{
    uint64_t t1 = mono_ns();
    int saved = errno;
    guard_on(t);
    if (offset == OFFSET_FROM_POSITION) {
        /* read()/readv() moved the file position by exactly what they returned. */
        off_t pos = lseek(fd, 0, SEEK_CUR);
        offset = pos >= 0 && (uint64_t)pos >= length ? (uint64_t)pos - length : OFFSET_UNKNOWN;
    }
    if (kind == GF_KIND_READ)
        open_readahead_read(fd, offset, length);
    struct gf_record r = {
        .kind = kind, .flags = flags, .fd = fd, .time_ns = t0, .dev = fi->dev, .ino = fi->ino,
        .offset = offset, .length = length, .duration_ns = saturate32(t1 - t0),
    };
    emit(t, &r, NULL, 0);
    guard_off(t);
    errno = saved;
}

static inline void note_close(struct tstate *t, int fd, const struct fdinfo *fi, uint64_t t0, uint8_t flags)
{
    uint64_t t1 = mono_ns();
    int saved = errno;
    guard_on(t);
    open_readahead_close(fd);
    struct gf_record r = {
        .kind = GF_KIND_CLOSE, .flags = flags, .fd = fd, .time_ns = t0, .dev = fi->dev,
        .ino = fi->ino, .duration_ns = saturate32(t1 - t0),
    };
    emit(t, &r, NULL, 0);
    /* A file is done with: let the daemon hear about it now, not 2 ms later. */
    flush_own(t);
    guard_off(t);
    errno = saved;
}

/*
 * Builds the absolute form of path as opened relative to dirfd. Returns its
 * length (0: cannot tell, do not track); cuts at GF_MAX_PATH and says so.
 */

/* Records an open that succeeded, if its file is wanted (intercept_open.c; fopen too). */
__attribute__((visibility("hidden")))
void note_open(struct tstate *t, int dirfd, const char *path, int fd, uint64_t flags,
               uint64_t t0, uint8_t rflags);
