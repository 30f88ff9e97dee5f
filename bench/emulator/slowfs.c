/*
 * slowfs: a read-only FUSE mirror of a directory that behaves like slow,
 * remote storage, so the benchmark can show what gofetch's prefetching saves.
 *
 *   slowfs SOURCE_DIR MOUNTPOINT [--latency-ms X] [--bandwidth-mbps Y]
 *          [--open-latency-ms Z] [--no-keep-cache] [--max-read-kb N]
 *          [--threads N] [-f] [-d]
 *
 * Every read request the kernel sends costs --latency-ms (measured from its
 * arrival, so concurrent requests overlap as they do against network storage),
 * and, when --bandwidth-mbps is set, all requests share one link of that rate.
 *
 * What makes the emulator useful for a prefetcher is that the kernel keeps what
 * it read: open() answers with keep_cache and entries and attributes are cached
 * for a day, so pages warmed by one open survive into the next. The source is
 * taken to be static while mounted; changes to it may not be seen.
 * --no-keep-cache gives the opposite, a mount where every open() drops the
 * file's pages, which gofetch must detect instead of warming in vain.
 *
 * Build: make -C bench/emulator (needs libfuse3-dev and pkg-config).
 */
#define FUSE_USE_VERSION 312
#define _GNU_SOURCE

#include <fuse.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Entries and attributes never expire in practice: an expired attribute makes
 * the kernel ask again and, should anything look changed, drop the page cache. */
#define CACHE_TIMEOUT_S 86400.0
/* Names that do not exist are remembered only briefly, so that a benchmark may
 * still add files to the source after mounting. */
#define NEGATIVE_TIMEOUT_S 1.0

struct options {
    const char *source;
    const char *mountpoint;
    double latency_ms;
    double open_latency_ms;
    double bandwidth_mibps; /* 0: unlimited */
    bool keep_cache;
    unsigned max_read_kb;
    unsigned threads;
    bool foreground;
    bool debug;
};

static struct options opt = {
    .latency_ms = 2.0,
    .keep_cache = true,
    .max_read_kb = 128,
    .threads = 64,
};

/* The source directory, opened once: every path is resolved relative to it,
 * which keeps working even if the mount point hides the source's own path. */
static int source_fd = -1;

/* The shared link for --bandwidth-mbps. Requests are paced in virtual time: a
 * request's data start flowing once its latency has passed and the link is free,
 * and occupy the link for bytes / rate. It is a token bucket without burst, so
 * the cap holds over any interval and however many threads read at once. */
static pthread_mutex_t link_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t link_free_ns;

/* What reached the "storage", printed at unmount: the benchmark and the tests
 * use it to see how many requests a workload or a prefetcher caused. */
static atomic_uint_fast64_t stat_reads, stat_bytes, stat_largest, stat_opens, stat_in_flight, stat_peak;

static void atomic_max(atomic_uint_fast64_t *a, uint64_t v)
{
    uint64_t old = atomic_load(a);
    while (v > old && !atomic_compare_exchange_weak(a, &old, v)) {
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t deadline)
{
    struct timespec ts = {
        .tv_sec = (time_t)(deadline / 1000000000u),
        .tv_nsec = (long)(deadline % 1000000000u),
    };
    /* Absolute, so a signal that interrupts the sleep does not lengthen it. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static uint64_t ms_to_ns(double ms)
{
    return ms <= 0 ? 0 : (uint64_t)llround(ms * 1e6);
}

/* "/a/b" -> "a/b", "/" -> "." for the *at() calls on source_fd. */
static const char *relative(const char *path)
{
    while (*path == '/')
        path++;
    return *path ? path : ".";
}

static void *slowfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    cfg->use_ino = 1;
    cfg->entry_timeout = CACHE_TIMEOUT_S;
    cfg->attr_timeout = CACHE_TIMEOUT_S;
    cfg->negative_timeout = NEGATIVE_TIMEOUT_S;
    /* read and release use the file handle only; skip path lookups for them. */
    cfg->nullpath_ok = 1;
    /* With auto_inval_data the kernel drops pages whenever a refreshed mtime
     * differs; the source is static, so it could only cost warmed pages. */
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
    /* libfuse refuses to start unless this matches the max_read mount option. */
    conn->max_read = opt.max_read_kb * 1024;
    /* Readahead, fadvise(WILLNEED) and most reads reach us as background
     * requests, of which the kernel allows only max_background (default 12) in
     * flight per mount; let as many overlap as there are threads to serve them. */
    conn->max_background = opt.threads;
    conn->congestion_threshold = opt.threads * 3 / 4;
    return NULL;
}

static int slowfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    int rc = fi ? fstat((int)fi->fh, st)
                : fstatat(source_fd, relative(path), st, AT_SYMLINK_NOFOLLOW);
    return rc == 0 ? 0 : -errno;
}

static int slowfs_readlink(const char *path, char *buf, size_t size)
{
    if (size == 0)
        return -EINVAL;
    ssize_t n = readlinkat(source_fd, relative(path), buf, size - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return 0;
}

static int slowfs_open(const char *path, struct fuse_file_info *fi)
{
    uint64_t arrival = now_ns();
    /* The mount is read-only too, so the kernel refuses most writes before they
     * reach us; this covers whatever slips through (e.g. O_TRUNC alone). */
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_CREAT)))
        return -EROFS;
    /* The kernel follows symlinks itself (getattr reports them as links), so a
     * link here means the source changed under us: refuse rather than follow
     * it out of the source. O_NOATIME where we may, like gofetch. */
    int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW;
    int fd = openat(source_fd, relative(path), flags | O_NOATIME);
    if (fd < 0 && errno == EPERM)
        fd = openat(source_fd, relative(path), flags);
    if (fd < 0)
        return -errno;
    fi->fh = (uint64_t)fd;
    atomic_fetch_add(&stat_opens, 1);
    /* keep_cache is what lets warmed pages survive the next open(); without it
     * the kernel invalidates the inode's page cache on every open. */
    fi->keep_cache = opt.keep_cache;
    if (opt.open_latency_ms > 0)
        sleep_until_ns(arrival + ms_to_ns(opt.open_latency_ms));
    return 0;
}

static int slowfs_read(const char *path, char *buf, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)path;
    /* Taken before the real read, so a slow local disk under the source does
     * not add to the injected latency but hides inside it. */
    uint64_t arrival = now_ns();
    atomic_max(&stat_peak, atomic_fetch_add(&stat_in_flight, 1) + 1);
    size_t done = 0;
    while (done < size) {
        ssize_t n = pread((int)fi->fh, buf + done, size - done, off + (off_t)done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            atomic_fetch_sub(&stat_in_flight, 1);
            return -err;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }

    uint64_t deadline = arrival + ms_to_ns(opt.latency_ms);
    if (opt.bandwidth_mibps > 0 && done > 0) {
        uint64_t transfer = (uint64_t)llround((double)done * 1e9 / (opt.bandwidth_mibps * 1048576.0));
        pthread_mutex_lock(&link_lock);
        uint64_t start = deadline > link_free_ns ? deadline : link_free_ns;
        link_free_ns = start + transfer;
        deadline = link_free_ns;
        pthread_mutex_unlock(&link_lock);
    }
    /* Each request sleeps in its own worker thread, so requests overlap. */
    sleep_until_ns(deadline);
    atomic_fetch_sub(&stat_in_flight, 1);
    atomic_fetch_add(&stat_reads, 1);
    atomic_fetch_add(&stat_bytes, done);
    atomic_max(&stat_largest, size);
    return (int)done;
}

static int slowfs_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    close((int)fi->fh);
    return 0;
}

static int slowfs_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    return fstatvfs(source_fd, st) == 0 ? 0 : -errno;
}

static int slowfs_opendir(const char *path, struct fuse_file_info *fi)
{
    int fd = openat(source_fd, relative(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *dir = fdopendir(fd);
    if (!dir) {
        int err = errno;
        close(fd);
        return -err;
    }
    fi->fh = (uint64_t)(uintptr_t)dir;
    return 0;
}

static int slowfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                          struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)path;
    (void)off;
    DIR *dir = (DIR *)(uintptr_t)fi->fh;
    /* Offsets of 0 let libfuse collect the whole listing on the first call and
     * serve later offsets itself; benchmark directories fit in memory. */
    rewinddir(dir);
    for (;;) {
        errno = 0;
        struct dirent *d = readdir(dir);
        if (!d) {
            if (errno)
                return -errno;
            break;
        }
        struct stat st;
        enum fuse_fill_dir_flags fill = 0;
        /* With readdirplus the kernel gets the attributes along with the names
         * and need not look every file up again before opening it. */
        if ((flags & FUSE_READDIR_PLUS) &&
            fstatat(dirfd(dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            fill = FUSE_FILL_DIR_PLUS;
        } else {
            memset(&st, 0, sizeof st);
            st.st_ino = d->d_ino;
            st.st_mode = (mode_t)(DTTOIF(d->d_type));
        }
        if (filler(buf, d->d_name, &st, 0, fill))
            break;
    }
    return 0;
}

static int slowfs_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    closedir((DIR *)(uintptr_t)fi->fh);
    return 0;
}

static const struct fuse_operations slowfs_ops = {
    .init = slowfs_init,
    .getattr = slowfs_getattr,
    .readlink = slowfs_readlink,
    .open = slowfs_open,
    .read = slowfs_read,
    .release = slowfs_release,
    .statfs = slowfs_statfs,
    .opendir = slowfs_opendir,
    .readdir = slowfs_readdir,
    .releasedir = slowfs_releasedir,
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: slowfs SOURCE_DIR MOUNTPOINT [options]\n"
            "  --latency-ms X        delay of every read request, ms (float; default 2)\n"
            "  --bandwidth-mbps Y    shared cap over all reads, MiB/s (0 = unlimited, default)\n"
            "  --open-latency-ms Z   delay of every open, ms (default 0)\n"
            "  --no-keep-cache       every open() drops the file's page cache\n"
            "  --max-read-kb N       largest read request, KiB (default 128)\n"
            "  --threads N           worker threads serving requests (default 64)\n"
            "  -f                    stay in the foreground\n"
            "  -d                    FUSE debug output (implies -f)\n");
}

static bool parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0)
        return false;
    *out = v;
    return true;
}

static bool parse_unsigned(const char *s, unsigned *out, unsigned lo, unsigned hi)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = (unsigned)v;
    return true;
}

static int parse_args(int argc, char **argv)
{
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "-f")) {
            opt.foreground = true;
        } else if (!strcmp(a, "-d")) {
            opt.debug = opt.foreground = true;
        } else if (!strcmp(a, "--no-keep-cache")) {
            opt.keep_cache = false;
        } else if (!strcmp(a, "--latency-ms")) {
            ok = val && parse_double(val, &opt.latency_ms), i++;
        } else if (!strcmp(a, "--open-latency-ms")) {
            ok = val && parse_double(val, &opt.open_latency_ms), i++;
        } else if (!strcmp(a, "--bandwidth-mbps")) {
            ok = val && parse_double(val, &opt.bandwidth_mibps), i++;
        } else if (!strcmp(a, "--max-read-kb")) {
            /* 4 KiB up to the 1 MiB the kernel's largest FUSE request can hold. */
            ok = val && parse_unsigned(val, &opt.max_read_kb, 4, 1024), i++;
        } else if (!strcmp(a, "--threads")) {
            ok = val && parse_unsigned(val, &opt.threads, 2, 1024), i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "slowfs: unknown option %s\n", a);
            return -1;
        } else if (positional == 0) {
            opt.source = a, positional++;
        } else if (positional == 1) {
            opt.mountpoint = a, positional++;
        } else {
            fprintf(stderr, "slowfs: unexpected argument %s\n", a);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "slowfs: bad or missing value for %s\n", a);
            return -1;
        }
    }
    if (positional != 2) {
        usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0)
        return 2;

    source_fd = open(opt.source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (source_fd < 0) {
        fprintf(stderr, "slowfs: %s: %s\n", opt.source, strerror(errno));
        return 1;
    }
    char source_abs[PATH_MAX];
    if (!realpath(opt.source, source_abs))
        snprintf(source_abs, sizeof source_abs, "%s", opt.source);

    /* Mount options, passed through libfuse to mount(2):
     *  ro                  the kernel answers writes with EROFS itself;
     *  default_permissions the kernel checks mode bits against the caller, so a
     *                      client (or gofetch acting as it) cannot read through
     *                      us what it could not read directly;
     *  max_read            caps each read request, as network file systems do;
     *  allow_other         as root only: lets other users in (default_permissions
     *                      still applies). Root needs no user_allow_other in
     *                      /etc/fuse.conf; other users would, so they go without. */
    char fsname[PATH_MAX];
    snprintf(fsname, sizeof fsname, "%s", source_abs);
    /* The source names the mount in /proc/self/mountinfo; a comma or backslash
     * in it would split or escape the option list. */
    for (char *p = fsname; *p; p++)
        if (*p == ',' || *p == '\\')
            *p = '_';
    char mount_opts[PATH_MAX + 256];
    snprintf(mount_opts, sizeof mount_opts,
             "ro,default_permissions,max_read=%u,fsname=slowfs:%s,subtype=slowfs%s",
             opt.max_read_kb * 1024, fsname, geteuid() == 0 ? ",allow_other" : "");

    char *fargv[] = {argv[0], "-o", mount_opts, opt.debug ? "-d" : NULL, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(opt.debug ? 4 : 3, fargv);

    struct fuse *fuse = fuse_new(&args, &slowfs_ops, sizeof slowfs_ops, NULL);
    if (!fuse)
        return 1;
    if (fuse_mount(fuse, opt.mountpoint) != 0) {
        fuse_destroy(fuse);
        return 1;
    }
    struct fuse_session *se = fuse_get_session(fuse);
    /* SIGINT, SIGTERM and SIGHUP end the loop, and we unmount below. */
    if (fuse_set_signal_handlers(se) != 0) {
        fuse_unmount(fuse);
        fuse_destroy(fuse);
        return 1;
    }

    if (opt.bandwidth_mibps > 0)
        printf("slowfs: mounted %s on %s latency=%g ms bandwidth=%g MiB/s max_read=%u KiB keep_cache=%d\n",
               source_abs, opt.mountpoint, opt.latency_ms, opt.bandwidth_mibps, opt.max_read_kb,
               opt.keep_cache);
    else
        printf("slowfs: mounted %s on %s latency=%g ms bandwidth=unlimited max_read=%u KiB keep_cache=%d\n",
               source_abs, opt.mountpoint, opt.latency_ms, opt.max_read_kb, opt.keep_cache);
    fflush(stdout);

    if (fuse_daemonize(opt.foreground) != 0) {
        fuse_remove_signal_handlers(se);
        fuse_unmount(fuse);
        fuse_destroy(fuse);
        return 1;
    }

    /* One thread per request in flight: a sleeping request must never hold up
     * the next, or latencies would add up instead of overlapping. Idle threads
     * are kept, so a burst of readahead does not pay for thread creation. */
    struct fuse_loop_config *loop = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(loop, 1);
    fuse_loop_cfg_set_max_threads(loop, opt.threads);
    fuse_loop_cfg_set_idle_threads(loop, opt.threads);
    int rc = fuse_loop_mt(fuse, loop);
    fuse_loop_cfg_destroy(loop);

    fuse_remove_signal_handlers(se);
    fuse_unmount(fuse);
    fuse_destroy(fuse);
    close(source_fd);
    printf("slowfs: unmounted %s: %" PRIuFAST64 " opens, %" PRIuFAST64 " read requests, %" PRIuFAST64
           " bytes, largest request %" PRIuFAST64 " bytes, at most %" PRIuFAST64 " requests in flight\n",
           opt.mountpoint, atomic_load(&stat_opens), atomic_load(&stat_reads), atomic_load(&stat_bytes),
           atomic_load(&stat_largest), atomic_load(&stat_peak));
    return rc == 0 ? 0 : 1;
}
