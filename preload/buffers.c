/* Per-thread event buffers: append, flush, hand over at thread exit. */
#include "shim.h"

/* ------------------------------------------------------------------------ */
/* Buffers and flushing                                                      */
/* ------------------------------------------------------------------------ */

void buf_reset(struct tbuf *b)
{
    b->used = sizeof(struct gf_header);
    atomic_store_explicit(&b->count, 0, memory_order_relaxed);
}



/* Sends b's message, or keeps it (see flush_mode), or drops and counts it. Caller holds b->lock. */
void flush_locked(struct tbuf *b, enum flush_mode mode)
{
    uint32_t n = atomic_load_explicit(&b->count, memory_order_relaxed);
    if (n == 0)
        return;
    bool up = link_try();
    if (!up && mode == FLUSH_FINAL) {
        /* A local connect() never blocks: the opener only needs the CPU back, which on
         * a busy machine can take a time slice or two. Bounded by time, not by yields
         * (those return at once when nothing else waits for this CPU). */
        uint64_t until = mono_ns() + FINAL_WAIT_NS;
        while (atomic_load(&g_link) == LINK_CONNECTING && mono_ns() < until)
            sched_yield();
        up = link_try();
    }
    if (!up && mode == FLUSH_HOLD && atomic_load(&g_link) == LINK_CONNECTING)
        return;
    bool sent = false;
    if (up) {
        int fd = atomic_load(&g_sock_fd);
        /* Cheap insurance against writing events into a file that reuses our fd number. */
        if (fd_is_socket(fd, atomic_load(&g_sock_dev), atomic_load(&g_sock_ino))) {
            struct gf_header *h = (struct gf_header *)b->msg;
            h->magic[0] = GF_MAGIC0;
            h->magic[1] = GF_MAGIC1;
            h->version = GF_VERSION;
            h->source = GF_SOURCE_PRELOAD;
            h->record_count = (uint16_t)n;
            h->header_size = sizeof(struct gf_header);
            h->pid = (uint32_t)atomic_load_explicit(&g_pid, memory_order_relaxed);
            h->dropped = saturate32(atomic_load_explicit(&g_dropped, memory_order_relaxed));
            h->sent_ns = mono_ns();
            ssize_t r = send(fd, b->msg, b->used, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (r == (ssize_t)b->used) {
                sent = true;
            } else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS &&
                       errno != ENOMEM && errno != EINTR) {
                link_lost();
            }
        } else {
            sock_forget();     /* the number is someone else's now; these events are lost */
        }
    }
    if (!sent)
        drop(n);
    buf_reset(b);
}

void flush_own(struct tstate *t)
{
    struct tbuf *b = t->buf;
    if (b && atomic_load_explicit(&b->count, memory_order_relaxed) && buf_trylock(b)) {
        flush_locked(b, FLUSH_HOLD);
        buf_unlock(b);
    }
}

/*
 * Buffers of threads that ended while the connection was being opened: their
 * events were kept (see thread_exit) and go out as soon as the link is up.
 */
void send_orphans(void)
{
    for (struct tbuf *b = atomic_load(&g_bufs); b; b = b->next) {
        if (!atomic_load(&b->in_use) && atomic_load_explicit(&b->count, memory_order_relaxed) &&
            buf_trylock(b)) {
            flush_locked(b, FLUSH_HOLD);
            buf_unlock(b);
        }
    }
}

/* Every thread's pending events; used where the process is about to vanish. */
void flush_all(void)
{
    for (struct tbuf *b = atomic_load(&g_bufs); b; b = b->next) {
        if (atomic_load_explicit(&b->count, memory_order_relaxed) && buf_trylock(b)) {
            flush_locked(b, FLUSH_FINAL);
            buf_unlock(b);
        }
    }
}

struct tbuf *acquire_buf(struct tstate *t)
{
    struct tbuf *b;
    for (b = atomic_load(&g_bufs); b; b = b->next) {
        int zero = 0;
        if (atomic_compare_exchange_strong(&b->in_use, &zero, 1))
            goto got;
    }
    b = (struct tbuf *)syscall(SYS_mmap, NULL, (size_t)BUF_BYTES, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        return NULL;
    atomic_store(&b->in_use, 1);
    b->next = atomic_load(&g_bufs);
    while (!atomic_compare_exchange_weak(&g_bufs, &b->next, b))
        ;
    buf_reset(b);
got:
    /* A recycled buffer may still hold an ended thread's events (kept while the
     * link was being opened): they stay, and go out with this thread's. */
    t->buf = b;
    /* Registers the thread-exit flush; glibc's setspecific does not allocate for our key. */
    if (g_key_ok)
        pthread_setspecific(g_key, b);
    return b;
}

/*
 * pthread key destructor: the thread is exiting, send what it has and recycle.
 * While another thread is still opening the connection the events stay in the
 * buffer (the opener sends them once up, see send_orphans): on a busy machine
 * the opener can be off the CPU for longer than any wait here should be.
 */
void thread_exit(void *p)
{
    struct tbuf *b = p;
    int saved = errno;
    guard_on(&ts);
    for (int spins = 0; !buf_trylock(b); spins++) {
        if (spins > 100000)
            goto out;          /* a flusher never lets go: leak the buffer rather than hang */
        sched_yield();
    }
    flush_locked(b, FLUSH_HOLD);
    buf_unlock(b);
    atomic_store(&b->in_use, 0);
out:
    if (ts.buf == b)
        ts.buf = NULL;
    guard_off(&ts);
    errno = saved;
}

/* Appends one record to the thread's buffer. Caller holds the guard and saved errno. */
void emit(struct tstate *t, struct gf_record *r, const char *path, size_t plen)
{
    size_t size = gf_record_size(r->kind, (uint32_t)plen);
    /* No daemon (or backing off from one): the cheap path. A connect under way: buffer. */
    if (!link_accepting()) {
        drop(1);
        return;
    }
    struct tbuf *b = t->buf ? t->buf : acquire_buf(t);
    if (!b || !buf_trylock(b)) {
        drop(1);
        return;
    }
    if (b->used + size > MSG_CAP) {
        flush_locked(b, FLUSH_HOLD);
        if (b->used + size > MSG_CAP) {
            /* Full while the connection is still being opened: make room, counting the loss. */
            drop(atomic_load_explicit(&b->count, memory_order_relaxed));
            buf_reset(b);
        }
    }
    if (!t->tid)
        t->tid = (uint32_t)syscall(SYS_gettid);
    r->size = (uint16_t)size;
    r->tid = t->tid;
    r->worker_id = atomic_load_explicit(&g_worker, memory_order_relaxed);
    const _Atomic uint32_t *cell = atomic_load_explicit(&g_epoch_cell, memory_order_acquire);
    r->epoch = cell ? atomic_load_explicit(cell, memory_order_relaxed)
                    : atomic_load_explicit(&g_epoch, memory_order_relaxed);

    unsigned char *p = b->msg + b->used;
    memcpy(p, r, sizeof *r);
    if (r->kind == GF_KIND_OPEN) {
        uint16_t pl = (uint16_t)plen;
        memcpy(p + sizeof *r, &pl, 2);
        memcpy(p + sizeof *r + 2, path, plen);
        memset(p + sizeof *r + 2 + plen, 0, size - sizeof *r - 2 - plen);
    }
    uint32_t n = atomic_load_explicit(&b->count, memory_order_relaxed);
    if (n == 0)
        b->oldest_ns = r->time_ns;
    b->used += (uint32_t)size;
    atomic_store_explicit(&b->count, n + 1, memory_order_relaxed);
    if (g_flush_ns == 0)
        flush_locked(b, FLUSH_HOLD);
    buf_unlock(b);
}

/*
 * Runs before every intercepted call, tracked fd or not, so a thread about to
 * block (on a pipe, a queue) sends what it has rather than sitting on it.
 * Returns whether it flushed.
 */
bool age_flush_at(struct tstate *t, struct tbuf *b, uint64_t now)
{
    if (now - b->oldest_ns < g_flush_ns)
        return false;
    int saved = errno;
    guard_on(t);
    if (buf_trylock(b)) {
        flush_locked(b, FLUSH_HOLD);
        buf_unlock(b);
    }
    guard_off(t);
    errno = saved;
    return true;
}

/* ------------------------------------------------------------------------ */
