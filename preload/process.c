/* The process: configuration and start-up, fork, exit, and the API for the Python client. */
#include "shim.h"

void socket_address(void)
{
    char path[sizeof g_addr.sun_path + 64];
    const char *env = getenv("GOFETCH_SOCKET");
    int n;
    if (env && *env) {
        n = snprintf(path, sizeof path, "%s", env);
    } else {
        const char *dir = getenv("XDG_RUNTIME_DIR");
        if (dir && *dir)
            n = snprintf(path, sizeof path, "%s/gofetch-%u/gofetch.sock", dir, (unsigned)getuid());
        else if (getuid() == 0)
            n = snprintf(path, sizeof path, "/run/gofetch/gofetch.sock");
        else
            n = snprintf(path, sizeof path, "/tmp/gofetch-%u/gofetch.sock", (unsigned)getuid());
    }
    if (n <= 0 || (size_t)n >= sizeof g_addr.sun_path) {
        atomic_store(&g_link, LINK_NEVER);   /* no usable address: count, never connect */
        return;
    }
    g_addr.sun_family = AF_UNIX;
    memcpy(g_addr.sun_path, path, (size_t)n + 1);
    g_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
}


bool env_decimal(const char *name, double max, double *out)
{
    const char *text = getenv(name);
    if (!text || !*text)
        return false;
    char *end;
    double v = strtod(text, &end);
    if (*end != '\0' || !(v >= 0 && v <= max))
        return false;
    *out = v;
    return true;
}

void init_config(void)
{
    const char *exclude = getenv("GOFETCH_EXCLUDE");
    prefix_parse(&g_exclude, exclude ? exclude
                                     : "/proc:/sys:/dev:/usr:/lib:/lib64:/etc:/run:/var/lib/dpkg");
    exclude_own_install();
    const char *include = getenv("GOFETCH_INCLUDE");
    if (include)
        prefix_parse(&g_include, include);

    double ms;
    if (env_decimal("GOFETCH_FLUSH_MS", 60000, &ms))
        g_flush_ns = (uint64_t)(ms * 1e6 + 0.5);
    const char *worker = getenv("GOFETCH_WORKER_ID");
    if (worker && *worker) {
        char *end;
        long v = strtol(worker, &end, 10);
        if (*end == '\0' && v >= INT32_MIN && v <= INT32_MAX)
            atomic_store(&g_worker, (int32_t)v);
    }
    open_readahead_config();
    socket_address();
    atomic_store(&g_pid, getpid());
}

void lazy_init(void)
{
    int expect = INIT_NONE;
    if (!atomic_compare_exchange_strong(&g_init, &expect, INIT_RUNNING))
        return;                          /* done, or under way (possibly further up this stack) */
    int saved = errno;
    guard_on(&ts);
    resolve_all();
    const char *disable = getenv("GOFETCH_DISABLE");
    if (!(disable && *disable && strcmp(disable, "0") != 0)) {
        init_config();
        g_key_ok = pthread_key_create(&g_key, thread_exit) == 0;
        g_active = pthread_atfork(atfork_prepare, NULL, atfork_child) == 0;
    }
    guard_off(&ts);
    atomic_store_explicit(&g_init, INIT_DONE, memory_order_release);
    errno = saved;
}

__attribute__((constructor)) static void gofetch_preload_init(void)
{
    lazy_init();
}

/* Normal exit: other threads may still hold events, send them all. */
__attribute__((destructor)) static void gofetch_preload_fini(void)
{
    if (atomic_load(&g_init) != INIT_DONE || !g_active || ts.busy)
        return;
    if (sys_getpid() != atomic_load(&g_pid))
        return;
    int saved = errno;
    guard_on(&ts);
    flush_all();
    guard_off(&ts);
    errno = saved;
}

/* ------------------------------------------------------------------------ */
/* fork                                                                      */
/* ------------------------------------------------------------------------ */

/* Send before fork so the child starts with an empty buffer and nothing is sent twice. */
void atfork_prepare(void)
{
    if (ts.busy)
        return;
    int saved = errno;
    guard_on(&ts);
    flush_own(&ts);
    guard_off(&ts);
    errno = saved;
}

/*
 * The child is a new sender: its own pid, its own connection (so the daemon's
 * SO_PEERCRED and EOF are per process), its own dropped count. Other threads'
 * buffers are copies of the parent's pending events and are discarded.
 */
void atfork_child(void)
{
    int saved = errno;
    atomic_store(&g_pid, sys_getpid());
    ts.tid = (uint32_t)syscall(SYS_gettid);
    /* The parent's connection is not the child's: close our copy, but only if the
     * number is still our socket (the application may have put a file of its own
     * there with a raw dup2 the shim never saw). */
    int s = atomic_load(&g_sock_fd);
    if (s >= 0 && fd_is_socket(s, atomic_load(&g_sock_dev), atomic_load(&g_sock_ino)))
        sys_close(s);
    atomic_store(&g_sock_fd, -1);
    if (atomic_load(&g_link) != LINK_NEVER)
        atomic_store(&g_link, LINK_DOWN);
    atomic_store(&g_retry_at, 0);
    g_backoff_ns = 0;
    atomic_store(&g_dropped, 0);
    for (struct tbuf *b = atomic_load(&g_bufs); b; b = b->next) {
        buf_reset(b);
        atomic_store(&b->lock, 0);
        if (b != ts.buf)
            atomic_store(&b->in_use, 0);
    }
    errno = saved;
}

/* ------------------------------------------------------------------------ */

void exit_flush(void)
{
    if (atomic_load(&g_init) != INIT_DONE || !g_active || ts.busy || in_vfork_child())
        return;
    guard_on(&ts);
    flush_all();
    guard_off(&ts);
}

EXPORT void _exit(int status)
{
    exit_flush();
    if (r__exit)
        r__exit(status);
    for (;;)
        syscall(SYS_exit_group, status);
}

EXPORT void _Exit(int status)
{
    exit_flush();
    if (r__Exit)
        r__Exit(status);
    for (;;)
        syscall(SYS_exit_group, status);
}

/* ------------------------------------------------------------------------ */
/* API                                                                       */
/* ------------------------------------------------------------------------ */

EXPORT void gofetch_preload_set_worker(int worker_id, unsigned epoch)
{
    atomic_store_explicit(&g_worker, (int32_t)worker_id, memory_order_relaxed);
    atomic_store_explicit(&g_epoch, (uint32_t)epoch, memory_order_relaxed);
}

EXPORT int gofetch_preload_share_epoch(int fd)
{
    int saved = errno, result = -1;
    struct stat st;
    /* Only a file whose size is sealed (a shrunk one would raise SIGBUS at a record),
     * and one page more at most EPOCH_CELLS_MAX times in a process's life (they stay). */
    long seals = fd >= 0 ? syscall(SYS_fcntl, fd, F_GET_SEALS) : -1;
    if (seals >= 0 && (seals & F_SEAL_SHRINK) && syscall(SYS_fstat, fd, &st) == 0 && S_ISREG(st.st_mode)
        && st.st_size >= (off_t)sizeof(uint32_t) && atomic_fetch_add(&g_epoch_cells, 1) < EPOCH_CELLS_MAX) {
        long page = syscall(SYS_mmap, NULL, sizeof(uint32_t), PROT_READ, MAP_SHARED, fd, 0);
        if (page != -1) {
            atomic_store_explicit(&g_epoch_cell, (const _Atomic uint32_t *)page, memory_order_release);
            result = 0;
        }
    }
    errno = saved;
    return result;
}
