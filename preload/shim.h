/*
 * Internal header of libgofetch_preload.so: an LD_PRELOAD shim that tells the gofetch daemon which
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
 *   GOFETCH_OPEN_READAHEAD_KB  warm files up to this size at open on FUSE and network
 *                         file systems while the job reads them whole (open_readahead.c; unset, 0: off)
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
 *
 * The files, each one concern (this header declares what they share; the hot
 * path's small functions are inline here or in intercept.h, and the library is
 * linked with -flto so the rest inline across files as in one):
 *   libc.c        the real functions, resolved with dlsym(RTLD_NEXT)
 *   state.c       process-wide state
 *   link.c        the connection to the daemon
 *   buffers.c     per-thread buffers and flushing
 *   filter.c      the path filter (also built alone by tests/shim/filter_cases.c)
 *   process.c     start-up, configuration, fork, exit, the Python client's API
 *   open_readahead.c  warming a small file at open on storage where a round trip is dear
 *   intercept_*.c the wrappers, by family: open, read, fd (mmap, close, dup), stdio
 */
#pragma once

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

/* Every name below is the library's own: none is exported but the wrappers (EXPORT). */
#pragma GCC visibility push(hidden)

/* Real functions (libc.c) */
/* Sets r_name once, from the next library that defines name. */
#define RESOLVE(name) \
    do { \
        if (!r_##name) r_##name = (__typeof__(r_##name))dlsym(RTLD_NEXT, #name); \
    } while (0)

extern int (*r_open)(const char *, int, ...);
extern int (*r_open64)(const char *, int, ...);
extern int (*r_openat)(int, const char *, int, ...);
extern int (*r_openat64)(int, const char *, int, ...);
extern int (*r___open_2)(const char *, int);
extern int (*r___open64_2)(const char *, int);
extern int (*r___openat_2)(int, const char *, int);
extern int (*r___openat64_2)(int, const char *, int);
extern int (*r_openat2)(int, const char *, struct open_how *, size_t);
extern ssize_t (*r_read)(int, void *, size_t);
extern ssize_t (*r___read_chk)(int, void *, size_t, size_t);
extern ssize_t (*r_pread)(int, void *, size_t, off_t);
extern ssize_t (*r_pread64)(int, void *, size_t, off64_t);
extern ssize_t (*r___pread_chk)(int, void *, size_t, off_t, size_t);
extern ssize_t (*r___pread64_chk)(int, void *, size_t, off64_t, size_t);
extern ssize_t (*r_readv)(int, const struct iovec *, int);
extern ssize_t (*r_preadv)(int, const struct iovec *, int, off_t);
extern ssize_t (*r_preadv64)(int, const struct iovec *, int, off64_t);
extern ssize_t (*r_preadv2)(int, const struct iovec *, int, off_t, int);
extern ssize_t (*r_preadv64v2)(int, const struct iovec *, int, off64_t, int);
extern void *(*r_mmap)(void *, size_t, int, int, int, off_t);
extern void *(*r_mmap64)(void *, size_t, int, int, int, off64_t);
extern int (*r_close)(int);
extern int (*r_close_range)(unsigned int, unsigned int, int);
extern int (*r_dup2)(int, int);
extern int (*r_dup3)(int, int, int);
extern FILE *(*r_fopen)(const char *, const char *);
extern FILE *(*r_fopen64)(const char *, const char *);
extern size_t (*r_fread)(void *, size_t, size_t, FILE *);
extern size_t (*r___fread_chk)(void *, size_t, size_t, size_t, FILE *);
extern size_t (*r_fread_unlocked)(void *, size_t, size_t, FILE *);
extern size_t (*r___fread_unlocked_chk)(void *, size_t, size_t, size_t, FILE *);
extern int (*r_fclose)(FILE *);
extern void (*r__exit)(int);
extern void (*r__Exit)(int);


static inline int sys_close(int fd)
{
    return r_close ? r_close(fd) : (int)syscall(SYS_close, fd);
}

static inline int sys_dup3(int oldfd, int newfd, int flags)
{
    return r_dup3 ? r_dup3(oldfd, newfd, flags) : (int)syscall(SYS_dup3, oldfd, newfd, flags);
}

static inline ssize_t sys_read(int fd, void *buf, size_t n)
{
    return r_read ? r_read(fd, buf, n) : syscall(SYS_read, fd, buf, n);
}

static inline ssize_t sys_pread(int fd, void *buf, size_t n, off_t off)
{
    return r_pread ? r_pread(fd, buf, n, off) : syscall(SYS_pread64, fd, buf, n, off);
}

static inline ssize_t sys_readv(int fd, const struct iovec *iov, int cnt)
{
    return r_readv ? r_readv(fd, iov, cnt) : syscall(SYS_readv, fd, iov, cnt);
}

/* preadv/preadv2 take the offset split in two registers at the syscall level. */
static inline ssize_t sys_preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    return syscall(SYS_preadv2, fd, iov, cnt, (unsigned long)off, 0UL, flags);
}

static inline void *sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return r_mmap ? r_mmap(addr, len, prot, flags, fd, off)
                  : (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static inline pid_t sys_getpid(void)
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




/*
 * The connection. The fd number, once ours, stays ours for the life of the
 * process: a reconnect dup3()s the new socket onto it, so a thread still
 * holding the old number can never send into a file the application opened
 * in the meantime.
 */

struct fd_slot {
    _Atomic uint32_t tracked;
    uint32_t pad;
    uint64_t dev;
    uint64_t ino;
    /* open_readahead.c: the size of a small file on remote storage (0: not one), and
     * how far the job has read it (here, so a read touches one line of the table). */
    uint64_t ra_size;
    _Atomic uint64_t ra_end;
};

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


/*
 * Initial-exec TLS: a global-dynamic access may call __tls_get_addr, which can
 * allocate, from inside an intercepted read.
 */
struct tstate {
    struct tbuf *buf;
    uint32_t tid;
    volatile int busy;         /* re-entrancy guard: shim work in progress on this thread */
};


extern _Atomic int g_init;
extern bool g_active;
extern uint64_t g_flush_ns;
extern _Atomic pid_t g_pid;
extern _Atomic int32_t g_worker;
extern _Atomic uint32_t g_epoch;
/* The process family's shared epoch cell once a client handed it over
 * (gofetch_preload_share_epoch): records take their epoch from it, so a forked
 * child stamps a new epoch the moment its parent writes it. Mapped by the shim
 * itself and never unmapped (an interpreter's own mapping goes away at its exit,
 * while reads still happen); g_epoch_cells bounds how many pages it ever maps. */
extern _Atomic(const _Atomic uint32_t *) g_epoch_cell;
extern _Atomic int g_epoch_cells;
#define EPOCH_CELLS_MAX 4
extern _Atomic uint64_t g_dropped;
extern struct prefix_list g_exclude, g_include;
extern char g_prefix_store[16384];
extern size_t g_prefix_used;
extern struct sockaddr_un g_addr;
extern socklen_t g_addrlen;
extern _Atomic int g_link;
extern _Atomic uint64_t g_retry_at;
extern uint64_t g_backoff_ns;
extern _Atomic int g_sock_fd;
extern _Atomic uint64_t g_sock_dev, g_sock_ino;
extern struct fd_slot g_fds[FD_TABLE_SIZE];
extern _Atomic(struct tbuf *) g_bufs;
extern pthread_key_t g_key;
extern bool g_key_ok;
extern __thread struct tstate ts __attribute__((tls_model("initial-exec")));

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

static inline size_t fmt_uint(char *out, unsigned long v)
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

/* A read of a tracked fd: how far a small file on remote storage has been read. */
static inline void open_readahead_read(int fd, uint64_t offset, uint64_t length)
{
    struct fd_slot *s = &g_fds[fd];
    if (likely(s->ra_size == 0) || offset == OFFSET_UNKNOWN)
        return;
    uint64_t end = offset + length;
    if (end > atomic_load_explicit(&s->ra_end, memory_order_relaxed))
        atomic_store_explicit(&s->ra_end, end, memory_order_relaxed);
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

/* ------------------------------------------------------------------------ */
/* Functions of the library's files                                          */
/* ------------------------------------------------------------------------ */

void resolve_all(void);
bool fd_is_socket(int fd, uint64_t dev, uint64_t ino);
int open_socket(void);
bool link_connect_slow(void);
void link_lost(void);
void sock_forget(void);
void buf_reset(struct tbuf *b);
void flush_locked(struct tbuf *b, enum flush_mode mode);
void flush_own(struct tstate *t);
void send_orphans(void);
void flush_all(void);
struct tbuf *acquire_buf(struct tstate *t);
void thread_exit(void *p);
void emit(struct tstate *t, struct gf_record *r, const char *path, size_t plen);
bool age_flush_at(struct tstate *t, struct tbuf *b, uint64_t now);
void prefix_add(struct prefix_list *l, const char *s, size_t len);
void prefix_parse(struct prefix_list *l, const char *spec);
size_t prefix_match(const struct prefix_list *l, const char *p, size_t plen);
bool path_wanted(const char *p, size_t len);
void normalise_path(char *p);
void exclude_install_of(const char *program, bool venv_only);
void exclude_own_install(void);
void socket_address(void);
/* A number in the environment: decimal, 0 to max; false (out untouched) when unset or not one. */
bool env_decimal(const char *name, double max, double *out);
void init_config(void);
void open_readahead_config(void);
bool open_readahead(int fd, uint64_t dev, uint64_t size);
void open_readahead_close(int fd);
void lazy_init(void);
void atfork_prepare(void);
void atfork_child(void);
void exit_flush(void);


/* ------------------------------------------------------------------------ */
/* Connection to the daemon (link.c), buffers (buffers.c)                    */
/* ------------------------------------------------------------------------ */



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


static inline bool buf_trylock(struct tbuf *b)
{
    return atomic_exchange_explicit(&b->lock, 1, memory_order_acquire) == 0;
}

static inline void buf_unlock(struct tbuf *b)
{
    atomic_store_explicit(&b->lock, 0, memory_order_release);
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


/*
 * A vfork()ed child (CPython's subprocess uses vfork) shares our memory but
 * not our fd table: when it closes fds before exec, the parent's table and
 * socket must stay as they are. Only checked when a tracked fd is involved.
 */
static inline bool in_vfork_child(void)
{
    return sys_getpid() != atomic_load_explicit(&g_pid, memory_order_relaxed);
}

#pragma GCC visibility pop
