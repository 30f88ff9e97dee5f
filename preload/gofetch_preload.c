/*
 * libgofetch_preload.so: an LD_PRELOAD shim that tells the gofetch daemon which
 * files a process opens, reads and maps (docs/wire-format.md).
 *
 * The shim sits on the I/O path of a training job, so everything here is shaped
 * by three rules: never block, never change what the application sees (return
 * values, errno), and never crash or abort the host. Events are batched per
 * thread and sent with one non-blocking send(); whatever cannot be sent is
 * dropped and counted rather than waited for.
 *
 * Environment:
 *   GOFETCH_DISABLE=1     do nothing at all (pure pass-through)
 *   GOFETCH_SOCKET        daemon socket (default $XDG_RUNTIME_DIR/gofetch-<uid>/gofetch.sock; without
 *                         it /run/gofetch/gofetch.sock for root, /tmp/gofetch-<uid>/gofetch.sock for others)
 *   GOFETCH_EXCLUDE       colon-separated path prefixes, replaces the default list
 *   GOFETCH_INCLUDE       colon-separated path prefixes; when non-empty, only these
 *   GOFETCH_FLUSH_MS      max age of a buffered event before it is sent (default 2)
 *   GOFETCH_WORKER_ID     worker id stamped on every record (default -1)
 *
 * Path filter: a path is recorded when it is not under an exclude prefix and, if
 * GOFETCH_INCLUDE is set, is under an include prefix. When both match, the
 * longer (more specific) prefix wins, so GOFETCH_INCLUDE=/usr/share/data works
 * despite the default /usr exclusion. Paths containing /site-packages/,
 * /dist-packages/ or /__pycache__/ and the running program's own files are always
 * excluded: <P>/lib, <P>/include and <P>/pyvenv.cfg of the binary in <P>/bin/
 * (/proc/self/exe), and the same of the path it was started by when <P> is a
 * Python virtual environment (a venv's bin/python is a symlink to the interpreter
 * it was made from).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gofetch_preload.h"

/* <stdio.h> may make this a macro; we define the function. */
#undef fread_unlocked

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the wire format is little-endian and the shim writes structs as they are"
#endif

#define EXPORT __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define FD_TABLE_SIZE 8192
#define BUF_BYTES 16384                 /* one mmap per thread that records */
#define SOCK_FD_FLOOR 100               /* keep our socket out of the low fds apps reuse */
#define BACKOFF_MIN_NS 100000000ull     /* 100 ms */
#define FINAL_WAIT_NS 20000000ull       /* 20 ms: how long a process's last flush waits for an opener */
#define BACKOFF_MAX_NS 5000000000ull    /* 5 s */
#define OFFSET_UNKNOWN UINT64_MAX      /* on the wire: the sender could not tell */
#define OFFSET_FROM_POSITION (UINT64_MAX - 1)  /* note_io: derive from the file position */
#define MAX_PREFIXES 64
#define MAX_OPEN_RECORD ((sizeof(struct gf_record) + 2 + GF_MAX_PATH + 7) & ~(size_t)7)

/* ------------------------------------------------------------------------ */
/* Real functions                                                            */
/* ------------------------------------------------------------------------ */

/*
 * Resolved with dlsym(RTLD_NEXT). dlsym itself may allocate, and an interposed
 * malloc may open or read files before these are set, so every caller must
 * cope with NULL: the sys_* helpers below fall back to raw system calls.
 */
static int (*r_open)(const char *, int, ...);
static int (*r_open64)(const char *, int, ...);
static int (*r_openat)(int, const char *, int, ...);
static int (*r_openat64)(int, const char *, int, ...);
static int (*r___open_2)(const char *, int);
static int (*r___open64_2)(const char *, int);
static int (*r___openat_2)(int, const char *, int);
static int (*r___openat64_2)(int, const char *, int);
static int (*r_openat2)(int, const char *, struct open_how *, size_t);
static ssize_t (*r_read)(int, void *, size_t);
static ssize_t (*r___read_chk)(int, void *, size_t, size_t);
static ssize_t (*r_pread)(int, void *, size_t, off_t);
static ssize_t (*r_pread64)(int, void *, size_t, off64_t);
static ssize_t (*r___pread_chk)(int, void *, size_t, off_t, size_t);
static ssize_t (*r___pread64_chk)(int, void *, size_t, off64_t, size_t);
static ssize_t (*r_readv)(int, const struct iovec *, int);
static ssize_t (*r_preadv)(int, const struct iovec *, int, off_t);
static ssize_t (*r_preadv64)(int, const struct iovec *, int, off64_t);
static ssize_t (*r_preadv2)(int, const struct iovec *, int, off_t, int);
static ssize_t (*r_preadv64v2)(int, const struct iovec *, int, off64_t, int);
static void *(*r_mmap)(void *, size_t, int, int, int, off_t);
static void *(*r_mmap64)(void *, size_t, int, int, int, off64_t);
static int (*r_close)(int);
static int (*r_close_range)(unsigned int, unsigned int, int);
static int (*r_dup2)(int, int);
static int (*r_dup3)(int, int, int);
static FILE *(*r_fopen)(const char *, const char *);
static FILE *(*r_fopen64)(const char *, const char *);
static size_t (*r_fread)(void *, size_t, size_t, FILE *);
static size_t (*r___fread_chk)(void *, size_t, size_t, size_t, FILE *);
static size_t (*r_fread_unlocked)(void *, size_t, size_t, FILE *);
static size_t (*r___fread_unlocked_chk)(void *, size_t, size_t, size_t, FILE *);
static int (*r_fclose)(FILE *);
static void (*r__exit)(int);
static void (*r__Exit)(int);

#define RESOLVE(name) \
    do { \
        if (!r_##name) r_##name = (__typeof__(r_##name))dlsym(RTLD_NEXT, #name); \
    } while (0)

static void resolve_all(void)
{
    RESOLVE(open); RESOLVE(open64); RESOLVE(openat); RESOLVE(openat64);
    RESOLVE(__open_2); RESOLVE(__open64_2); RESOLVE(__openat_2); RESOLVE(__openat64_2);
    RESOLVE(openat2);
    RESOLVE(read); RESOLVE(__read_chk); RESOLVE(pread); RESOLVE(pread64);
    RESOLVE(__pread_chk); RESOLVE(__pread64_chk);
    RESOLVE(readv); RESOLVE(preadv); RESOLVE(preadv64); RESOLVE(preadv2); RESOLVE(preadv64v2);
    RESOLVE(mmap); RESOLVE(mmap64);
    RESOLVE(close); RESOLVE(close_range); RESOLVE(dup2); RESOLVE(dup3);
    RESOLVE(fopen); RESOLVE(fopen64); RESOLVE(fread); RESOLVE(__fread_chk);
    RESOLVE(fread_unlocked); RESOLVE(__fread_unlocked_chk); RESOLVE(fclose);
    RESOLVE(_exit); RESOLVE(_Exit);
}


static int sys_close(int fd)
{
    return r_close ? r_close(fd) : (int)syscall(SYS_close, fd);
}

static int sys_dup3(int oldfd, int newfd, int flags)
{
    return r_dup3 ? r_dup3(oldfd, newfd, flags) : (int)syscall(SYS_dup3, oldfd, newfd, flags);
}

static ssize_t sys_read(int fd, void *buf, size_t n)
{
    return r_read ? r_read(fd, buf, n) : syscall(SYS_read, fd, buf, n);
}

static ssize_t sys_pread(int fd, void *buf, size_t n, off_t off)
{
    return r_pread ? r_pread(fd, buf, n, off) : syscall(SYS_pread64, fd, buf, n, off);
}

static ssize_t sys_readv(int fd, const struct iovec *iov, int cnt)
{
    return r_readv ? r_readv(fd, iov, cnt) : syscall(SYS_readv, fd, iov, cnt);
}

/* preadv/preadv2 take the offset split in two registers at the syscall level. */
static ssize_t sys_preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    return syscall(SYS_preadv2, fd, iov, cnt, (unsigned long)off, 0UL, flags);
}

static void *sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return r_mmap ? r_mmap(addr, len, prot, flags, fd, off)
                  : (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static pid_t sys_getpid(void)
{
    return (pid_t)syscall(SYS_getpid);
}

/* ------------------------------------------------------------------------ */
/* Process-wide state                                                        */
/* ------------------------------------------------------------------------ */

enum { INIT_NONE, INIT_RUNNING, INIT_DONE };
enum { LINK_DOWN, LINK_CONNECTING, LINK_UP, LINK_NEVER };

struct prefix_list {
    int n;
    const char *s[MAX_PREFIXES];
    size_t len[MAX_PREFIXES];
};

static _Atomic int g_init = INIT_NONE;
static bool g_active;                    /* false: GOFETCH_DISABLE or init failed */
static uint64_t g_flush_ns = 2000000;
static _Atomic pid_t g_pid;
static _Atomic int32_t g_worker = GF_UNKNOWN_WORKER;
static _Atomic uint32_t g_epoch = GF_UNKNOWN_EPOCH;
static _Atomic uint64_t g_dropped;

static struct prefix_list g_exclude, g_include;
static char g_prefix_store[16384];
static size_t g_prefix_used;

static struct sockaddr_un g_addr;
static socklen_t g_addrlen;

/*
 * The connection. The fd number, once ours, stays ours for the life of the
 * process: a reconnect dup3()s the new socket onto it, so a thread still
 * holding the old number can never send into a file the application opened
 * in the meantime.
 */
static _Atomic int g_link = LINK_DOWN;
static _Atomic uint64_t g_retry_at;      /* CLOCK_MONOTONIC_COARSE ns */
static uint64_t g_backoff_ns;            /* only touched by the LINK_CONNECTING owner */
static _Atomic int g_sock_fd = -1;
static _Atomic uint64_t g_sock_dev, g_sock_ino;

struct fd_slot {
    _Atomic uint32_t tracked;
    uint32_t pad;
    uint64_t dev;
    uint64_t ino;
};
static struct fd_slot g_fds[FD_TABLE_SIZE];

struct fdinfo {
    uint64_t dev;
    uint64_t ino;
};

/*
 * Per-thread message buffers live in mmap()ed blocks that are never freed, only
 * recycled, and that sit on one lock-free list. That lets exit paths (_exit,
 * the process destructor) flush every thread's events without racing a thread
 * that is exiting, and keeps the TLS footprint to a few bytes, so a dlopen()ed
 * copy of the shim still fits in the static TLS surplus.
 */
struct tbuf {
    struct tbuf *next;
    _Atomic int lock;          /* held by the owner while appending, or by a flusher */
    _Atomic int in_use;        /* owned by a live thread */
    _Atomic uint32_t count;    /* records in msg */
    uint32_t used;             /* bytes in msg, header included */
    uint64_t oldest_ns;        /* time_ns of the first buffered record */
    unsigned char msg[] __attribute__((aligned(8)));
};
#define MSG_CAP (BUF_BYTES - offsetof(struct tbuf, msg))
_Static_assert(MSG_CAP >= MAX_OPEN_RECORD + sizeof(struct gf_header), "buffer fits an open record");

static _Atomic(struct tbuf *) g_bufs;
static pthread_key_t g_key;
static bool g_key_ok;

/*
 * Initial-exec TLS: a global-dynamic access may call __tls_get_addr, which can
 * allocate, from inside an intercepted read.
 */
struct tstate {
    struct tbuf *buf;
    uint32_t tid;
    volatile int busy;         /* re-entrancy guard: shim work in progress on this thread */
};
static __thread struct tstate ts __attribute__((tls_model("initial-exec")));

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static inline uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static inline uint64_t coarse_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static inline uint32_t saturate32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static inline void drop(uint64_t n)
{
    atomic_fetch_add_explicit(&g_dropped, n, memory_order_relaxed);
}

static inline void guard_on(struct tstate *t)
{
    t->busy = 1;
    atomic_signal_fence(memory_order_seq_cst);
}

static inline void guard_off(struct tstate *t)
{
    atomic_signal_fence(memory_order_seq_cst);
    t->busy = 0;
}

static size_t fmt_uint(char *out, unsigned long v)
{
    char tmp[24];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* ------------------------------------------------------------------------ */
/* fd table                                                                  */
/* ------------------------------------------------------------------------ */

static inline bool fd_lookup(int fd, struct fdinfo *fi)
{
    if ((unsigned)fd >= FD_TABLE_SIZE)
        return false;
    struct fd_slot *s = &g_fds[fd];
    if (likely(!atomic_load_explicit(&s->tracked, memory_order_acquire)))
        return false;
    fi->dev = s->dev;
    fi->ino = s->ino;
    return true;
}

static inline void fd_track(int fd, uint64_t dev, uint64_t ino)
{
    struct fd_slot *s = &g_fds[fd];
    atomic_store_explicit(&s->tracked, 0, memory_order_relaxed);
    s->dev = dev;
    s->ino = ino;
    atomic_store_explicit(&s->tracked, 1, memory_order_release);
}

static inline void fd_forget(int fd)
{
    if ((unsigned)fd < FD_TABLE_SIZE)
        atomic_store_explicit(&g_fds[fd].tracked, 0, memory_order_release);
}

/* ------------------------------------------------------------------------ */
/* Connection to the daemon                                                  */
/* ------------------------------------------------------------------------ */

static bool fd_is_socket(int fd, uint64_t dev, uint64_t ino)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
           (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

enum { OPEN_FAILED, OPEN_UP, OPEN_UNTRUSTED };

/*
 * Connects to the daemon. Only a daemon of this user's or root's is trusted: the
 * socket's folder may have been made first by someone else (/tmp/gofetch-<uid>
 * without XDG_RUNTIME_DIR), who would otherwise receive every path this process
 * opens. Anyone else's socket is never written to, nor tried again.
 */
static int open_socket(void)
{
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return OPEN_FAILED;
    if (connect(s, (const struct sockaddr *)&g_addr, g_addrlen) != 0) {
        sys_close(s);
        return OPEN_FAILED;
    }
    struct ucred peer;
    socklen_t peer_len = sizeof peer;
    if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) != 0 ||
        (peer.uid != getuid() && peer.uid != 0)) {
        sys_close(s);
        return OPEN_UNTRUSTED;
    }
    /* The kernel clamps to net.core.wmem_max: ask for everything it allows. */
    int big = INT_MAX / 2;
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);

    int reserved = atomic_load(&g_sock_fd);
    if (reserved >= 0 && fd_is_socket(reserved, atomic_load(&g_sock_dev), atomic_load(&g_sock_ino)) &&
        sys_dup3(s, reserved, O_CLOEXEC) == reserved) {
        sys_close(s);
        s = reserved;
    } else {
        int high = fcntl(s, F_DUPFD_CLOEXEC, SOCK_FD_FLOOR);
        if (high >= 0) {
            sys_close(s);
            s = high;
        }
    }
    struct stat st;
    if (fstat(s, &st) != 0) {
        sys_close(s);
        atomic_store(&g_sock_fd, -1);
        return OPEN_FAILED;
    }
    atomic_store(&g_sock_dev, (uint64_t)st.st_dev);
    atomic_store(&g_sock_ino, (uint64_t)st.st_ino);
    atomic_store(&g_sock_fd, s);
    return OPEN_UP;
}

static void send_orphans(void);

/*
 * Until a daemon answers, every event is dropped on a path that costs one
 * coarse clock read; a connect() is tried at most once per back-off period.
 */
static bool link_connect_slow(void)
{
    if (atomic_load_explicit(&g_link, memory_order_acquire) != LINK_DOWN)
        return false;
    uint64_t now = coarse_ns();
    if (now < atomic_load_explicit(&g_retry_at, memory_order_relaxed))
        return false;
    int expect = LINK_DOWN;
    if (!atomic_compare_exchange_strong(&g_link, &expect, LINK_CONNECTING))
        return false;
    int saved = errno;
    int opened = open_socket();
    bool ok = opened == OPEN_UP;
    if (ok) {
        g_backoff_ns = 0;
        atomic_store_explicit(&g_link, LINK_UP, memory_order_release);
        send_orphans();
    } else if (opened == OPEN_UNTRUSTED) {
        atomic_store_explicit(&g_link, LINK_NEVER, memory_order_release);
    } else {
        g_backoff_ns = g_backoff_ns ? g_backoff_ns * 2 : BACKOFF_MIN_NS;
        if (g_backoff_ns > BACKOFF_MAX_NS)
            g_backoff_ns = BACKOFF_MAX_NS;
        atomic_store_explicit(&g_retry_at, now + g_backoff_ns, memory_order_relaxed);
        atomic_store_explicit(&g_link, LINK_DOWN, memory_order_release);
    }
    errno = saved;
    return ok;
}

static inline bool link_try(void)
{
    if (likely(atomic_load_explicit(&g_link, memory_order_acquire) == LINK_UP))
        return true;
    return link_connect_slow();
}

/*
 * Whether a new event is worth buffering: the link is up, or another thread is
 * opening it right now (its events are held until it is up, see flush_mode).
 */
static inline bool link_accepting(void)
{
    return link_try() || atomic_load_explicit(&g_link, memory_order_acquire) == LINK_CONNECTING;
}

/* The daemon went away (or our fd was taken): reconnect after a back-off. */
static void link_lost(void)
{
    int expect = LINK_UP;
    if (!atomic_compare_exchange_strong(&g_link, &expect, LINK_CONNECTING))
        return;
    g_backoff_ns = BACKOFF_MIN_NS;
    atomic_store_explicit(&g_retry_at, coarse_ns() + BACKOFF_MIN_NS, memory_order_relaxed);
    atomic_store_explicit(&g_link, LINK_DOWN, memory_order_release);
}

/* The application closed or replaced our socket's fd number: it is theirs now. */
static void sock_forget(void)
{
    atomic_store(&g_sock_fd, -1);
    link_lost();
}

/* ------------------------------------------------------------------------ */
/* Buffers and flushing                                                      */
/* ------------------------------------------------------------------------ */

static void buf_reset(struct tbuf *b)
{
    b->used = sizeof(struct gf_header);
    atomic_store_explicit(&b->count, 0, memory_order_relaxed);
}

/*
 * How a flush treats a connection that another thread is still opening: that
 * thread may be descheduled for milliseconds on a busy machine, and its
 * neighbours' events must not be lost meanwhile.
 */
enum flush_mode {
    FLUSH_HOLD,     /* keep the events buffered; a later flush sends them */
    FLUSH_FINAL,    /* the process is ending: give the opener a moment, then drop */
};

/* Sends b's message, or keeps it (see flush_mode), or drops and counts it. Caller holds b->lock. */
static void flush_locked(struct tbuf *b, enum flush_mode mode)
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
            link_lost();
        }
    }
    if (!sent)
        drop(n);
    buf_reset(b);
}

static inline bool buf_trylock(struct tbuf *b)
{
    return atomic_exchange_explicit(&b->lock, 1, memory_order_acquire) == 0;
}

static inline void buf_unlock(struct tbuf *b)
{
    atomic_store_explicit(&b->lock, 0, memory_order_release);
}

static void flush_own(struct tstate *t)
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
static void send_orphans(void)
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
static void flush_all(void)
{
    for (struct tbuf *b = atomic_load(&g_bufs); b; b = b->next) {
        if (atomic_load_explicit(&b->count, memory_order_relaxed) && buf_trylock(b)) {
            flush_locked(b, FLUSH_FINAL);
            buf_unlock(b);
        }
    }
}

static struct tbuf *acquire_buf(struct tstate *t)
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
static void thread_exit(void *p)
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
static void emit(struct tstate *t, struct gf_record *r, const char *path, size_t plen)
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
    r->epoch = atomic_load_explicit(&g_epoch, memory_order_relaxed);

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
static bool age_flush_at(struct tstate *t, struct tbuf *b, uint64_t now)
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

static inline bool buf_pending(const struct tbuf *b)
{
    return b && atomic_load_explicit(&b->count, memory_order_relaxed);
}

static inline void age_check(struct tstate *t)
{
    if (unlikely(buf_pending(t->buf)))
        age_flush_at(t, t->buf, mono_ns());
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

static void prefix_add(struct prefix_list *l, const char *s, size_t len)
{
    while (len > 1 && s[len - 1] == '/')
        len--;
    if (len == 0 || l->n >= MAX_PREFIXES || g_prefix_used + len + 1 > sizeof g_prefix_store)
        return;
    char *dst = g_prefix_store + g_prefix_used;
    memcpy(dst, s, len);
    dst[len] = '\0';
    g_prefix_used += len + 1;
    l->s[l->n] = dst;
    l->len[l->n] = len;
    l->n++;
}

static void prefix_parse(struct prefix_list *l, const char *spec)
{
    while (*spec) {
        const char *end = strchr(spec, ':');
        size_t len = end ? (size_t)(end - spec) : strlen(spec);
        if (len && spec[0] == '/')
            prefix_add(l, spec, len);
        spec += len;
        if (*spec == ':')
            spec++;
    }
}

/* Length of the longest prefix of l that p lies under (component-wise), or 0. */
static size_t prefix_match(const struct prefix_list *l, const char *p, size_t plen)
{
    size_t best = 0;
    for (int i = 0; i < l->n; i++) {
        size_t n = l->len[i];
        if (n > plen || n <= best || memcmp(p, l->s[i], n) != 0)
            continue;
        if (n == 1 || p[n] == '/' || p[n] == '\0')
            best = n;
    }
    return best;
}

static bool path_wanted(const char *p, size_t len)
{
    if (strstr(p, "/site-packages/") || strstr(p, "/dist-packages/") || strstr(p, "/__pycache__/"))
        return false;
    size_t exc = prefix_match(&g_exclude, p, len);
    if (g_include.n)
        return prefix_match(&g_include, p, len) > exc;
    return exc == 0;
}

/*
 * Lexically normalises an absolute path in place: drops "." components and empty
 * ones, and resolves ".." against the component before it (as Python's
 * os.path.abspath does; symlinks are left alone).
 */
static void normalise_path(char *p)
{
    char *out = p;                       /* p[0] == '/' */
    const char *in = p;
    while (*in) {
        while (*in == '/')
            in++;
        const char *end = in;
        while (*end && *end != '/')
            end++;
        size_t n = (size_t)(end - in);
        if (n == 0 || (n == 1 && in[0] == '.')) {
            /* nothing */
        } else if (n == 2 && in[0] == '.' && in[1] == '.') {
            while (out > p && *--out != '/')
                ;
        } else {
            *out++ = '/';
            memmove(out, in, n);
            out += n;
        }
        in = end;
    }
    if (out == p)
        *out++ = '/';
    *out = '\0';
}

/*
 * A program in <P>/bin/ keeps its own files in <P>: an interpreter its standard
 * library under <P>/lib and <P>/include, a Python virtual environment also its
 * <P>/pyvenv.cfg (read at every start). None of them is training data. With
 * venv_only, only where <P>/pyvenv.cfg exists (a path the program was started by
 * may be a user's script, whose <P>/lib is none of the program's business).
 */
static void exclude_install_of(const char *program, bool venv_only)
{
    char path[PATH_MAX];
    size_t n = strlen(program), c = 0;
    if (program[0] != '/') {             /* a relative path: from where we are */
        if (!getcwd(path, sizeof path) || path[0] != '/')
            return;
        c = strlen(path);
        path[c++] = '/';
    }
    if (c + n >= sizeof path)
        return;
    memcpy(path + c, program, n + 1);
    normalise_path(path);
    char *slash = strrchr(path, '/');
    *slash = '\0';                       /* path = the program's directory */
    size_t dlen = (size_t)(slash - path);
    if (dlen < 4 || strcmp(path + dlen - 4, "/bin") != 0)
        return;
    size_t plen = dlen - 4;              /* path[0, plen) = <P> */
    char buf[PATH_MAX + 16];
    memcpy(buf, path, plen);
    memcpy(buf + plen, "/pyvenv.cfg", 12);
    if (venv_only && access(buf, F_OK) != 0)
        return;
    static const char *const own[] = {"/lib", "/include", "/pyvenv.cfg"};
    for (size_t i = 0; i < sizeof own / sizeof *own; i++) {
        size_t k = strlen(own[i]);
        memcpy(buf + plen, own[i], k + 1);
        prefix_add(&g_exclude, buf, plen + k);
    }
}

/*
 * The running binary's install (/proc/self/exe, symlinks resolved), and the
 * virtual environment of the path it was started by (execve's, or argv[0] as a
 * shebang line gives it): a venv's bin/python is a symlink to the interpreter it
 * was made from, while the venv's own files are next to the link.
 */
static void exclude_own_install(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        if (exe[0] == '/')
            exclude_install_of(exe, false);
    }
    const char *started = (const char *)getauxval(AT_EXECFN);
    if (started && *started)
        exclude_install_of(started, true);
    const char *argv0 = program_invocation_name;
    if (argv0 && strchr(argv0, '/') && !(started && strcmp(argv0, started) == 0))
        exclude_install_of(argv0, true);
}

static void socket_address(void)
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

static void atfork_prepare(void);
static void atfork_child(void);

static void init_config(void)
{
    const char *exclude = getenv("GOFETCH_EXCLUDE");
    prefix_parse(&g_exclude, exclude ? exclude
                                     : "/proc:/sys:/dev:/usr:/lib:/lib64:/etc:/run:/var/lib/dpkg");
    exclude_own_install();
    const char *include = getenv("GOFETCH_INCLUDE");
    if (include)
        prefix_parse(&g_include, include);

    const char *ms = getenv("GOFETCH_FLUSH_MS");
    if (ms && *ms) {
        char *end;
        unsigned long v = strtoul(ms, &end, 10);
        if (*end == '\0' && v <= 60000)
            g_flush_ns = (uint64_t)v * 1000000ull;
    }
    const char *worker = getenv("GOFETCH_WORKER_ID");
    if (worker && *worker) {
        char *end;
        long v = strtol(worker, &end, 10);
        if (*end == '\0' && v >= INT32_MIN && v <= INT32_MAX)
            atomic_store(&g_worker, (int32_t)v);
    }
    socket_address();
    atomic_store(&g_pid, getpid());
}

static void lazy_init(void)
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
static void atfork_prepare(void)
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
static void atfork_child(void)
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

static void note_io(struct tstate *t, uint8_t kind, uint8_t flags, int fd, const struct fdinfo *fi,
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
    struct gf_record r = {
        .kind = kind, .flags = flags, .fd = fd, .time_ns = t0, .dev = fi->dev, .ino = fi->ino,
        .offset = offset, .length = length, .duration_ns = saturate32(t1 - t0),
    };
    emit(t, &r, NULL, 0);
    guard_off(t);
    errno = saved;
}

static void note_close(struct tstate *t, int fd, const struct fdinfo *fi, uint64_t t0, uint8_t flags)
{
    uint64_t t1 = mono_ns();
    int saved = errno;
    guard_on(t);
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
static void note_open(struct tstate *t, int dirfd, const char *path, int fd, uint64_t flags,
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
                struct gf_record r = {
                    .kind = GF_KIND_OPEN,
                    .flags = (uint8_t)(rflags | (truncated ? GF_FLAG_PATH_TRUNCATED : 0)),
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

/*
 * A vfork()ed child (CPython's subprocess uses vfork) shares our memory but
 * not our fd table: when it closes fds before exec, the parent's table and
 * socket must stay as they are. Only checked when a tracked fd is involved.
 */
static inline bool in_vfork_child(void)
{
    return sys_getpid() != atomic_load_explicit(&g_pid, memory_order_relaxed);
}

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
static void exit_flush(void)
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
