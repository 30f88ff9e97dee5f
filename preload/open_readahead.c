/*
 * Warming a small file at open, on storage where a round trip is dear.
 *
 * A job that opens a small file and reads it whole (an image decoder: a 4 kB
 * probe, then the rest) makes the kernel fetch it in two or three round trips,
 * because readahead starts small on a file's first read. On FUSE and network
 * file systems each round trip costs milliseconds (bench/emulator: 3 ms plus the
 * link), so the shim asks for the whole file at open with
 * posix_fadvise(POSIX_FADV_WILLNEED), which queues the reads and returns: the
 * job's first read then waits for one round trip instead of two (measured on the
 * emulator at 3 ms and 30 MiB/s, 4 kB + 60 kB + rest per file, two threads:
 * 11.0 ms per file without, 7.1 ms with).
 *
 * Only what the job opened, only files no larger than GOFETCH_OPEN_READAHEAD_KB
 * (unset or 0: off), only on file systems where a request crosses a link, and
 * only while this process reads the small files it opens whole: each close of
 * one scores +1 when the job read to its end and -4 when it did not, and files
 * are warmed while the score is 2 or more (a job that only reads headers turns
 * it off within a few files, and never pays for bytes it would not read).
 */
#include "shim.h"

#include <sys/vfs.h>

static uint64_t g_ra_max;                /* bytes; 0: off */
static _Atomic int g_ra_score;

/* File systems reached over a link (statfs f_type); the rest are left to the kernel. */
static bool remote_type(unsigned long type)
{
    switch (type) {
    case 0x65735546ul:  /* FUSE */
    case 0x6969ul:      /* NFS */
    case 0xFF534D42ul:  /* CIFS */
    case 0xFE534D42ul:  /* SMB2 */
    case 0x517Bul:      /* SMB */
    case 0x0BD00BD0ul:  /* Lustre */
    case 0x01021997ul:  /* 9p */
    case 0x00C36400ul:  /* Ceph */
    case 0x47504653ul:  /* GPFS */
    case 0x5346414Ful:  /* AFS */
    case 0x013111A8ul:  /* IBRIX */
    case 0x19830326ul:  /* FhGFS / BeeGFS */
        return true;
    default:
        return false;
    }
}

/* Devices seen, and whether each is remote; a full table asks statfs again (rare). */
#define RA_DEVICES 16
static struct {
    _Atomic uint64_t dev_plus_one;
    _Atomic int remote;
} g_ra_dev[RA_DEVICES];

static bool device_remote(int fd, uint64_t dev)
{
    for (int i = 0; i < RA_DEVICES; i++) {
        uint64_t d = atomic_load_explicit(&g_ra_dev[i].dev_plus_one, memory_order_acquire);
        if (d == 0)
            break;
        if (d == dev + 1)
            return atomic_load_explicit(&g_ra_dev[i].remote, memory_order_relaxed);
    }
    struct statfs fs;
    bool remote = fstatfs(fd, &fs) == 0 && remote_type((unsigned long)fs.f_type);
    for (int i = 0; i < RA_DEVICES; i++) {
        uint64_t expected = 0;
        if (atomic_compare_exchange_strong(&g_ra_dev[i].dev_plus_one, &expected, ~0ull)) {
            atomic_store_explicit(&g_ra_dev[i].remote, remote, memory_order_relaxed);
            atomic_store_explicit(&g_ra_dev[i].dev_plus_one, dev + 1, memory_order_release);
            break;
        }
        if (expected == dev + 1)
            break;                       /* another thread added it meanwhile */
    }
    return remote;
}

void open_readahead_config(void)
{
    double kb;
    if (env_decimal("GOFETCH_OPEN_READAHEAD_KB", 1 << 20, &kb))
        g_ra_max = (uint64_t)kb * 1024;
}

bool open_readahead(int fd, uint64_t dev, uint64_t size)
{
    if ((unsigned)fd >= FD_TABLE_SIZE)
        return false;
    g_fds[fd].ra_size = 0;
    if (g_ra_max == 0 || size == 0 || size > g_ra_max || !device_remote(fd, dev))
        return false;
    atomic_store_explicit(&g_fds[fd].ra_end, 0, memory_order_relaxed);
    g_fds[fd].ra_size = size;
    if (atomic_load_explicit(&g_ra_score, memory_order_relaxed) < 2)
        return false;
    /* The raw system call: nothing of ours, nor another preload's, in between. */
    return syscall(SYS_fadvise64, fd, (off_t)0, (off_t)size, POSIX_FADV_WILLNEED) == 0;
}

void open_readahead_close(int fd)
{
    if ((unsigned)fd >= FD_TABLE_SIZE || g_fds[fd].ra_size == 0)
        return;
    struct fd_slot *s = &g_fds[fd];
    bool whole = atomic_load_explicit(&s->ra_end, memory_order_relaxed) >= s->ra_size;
    s->ra_size = 0;
    int score = atomic_load_explicit(&g_ra_score, memory_order_relaxed);
    score = whole ? (score < 16 ? score + 1 : 16) : (score > -16 + 4 ? score - 4 : -16);
    atomic_store_explicit(&g_ra_score, score, memory_order_relaxed);
}
