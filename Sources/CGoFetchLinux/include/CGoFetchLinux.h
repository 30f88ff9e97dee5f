// C shims for what Swift's Glibc module does not give us.
//
// Swift imports Glibc without _GNU_SOURCE, and it knows nothing of system calls
// newer than its headers. Each shim below exists for one of those two reasons;
// every symbol is prefixed `CGoFetch_` so it can never collide with libc. It
// links nothing beyond libc: OpenBLAS (CGoFetchBLAS) and libbpf (CGoFetchBPF) are
// modules of their own, linked only where they are used.
#pragma once

// The header includes only what it needs for its own types: the system headers
// are compiled with _GNU_SOURCE in the .c file, never here, so that this module's
// view of them cannot conflict with Glibc's.
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

// MARK: - SO_PEERCRED (struct ucred needs _GNU_SOURCE)

/// Reads the credentials of the peer of a connected Unix socket.
/// Returns 0 or -1 with errno set. The corresponding C call is
/// `getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ...)`.
int CGoFetch_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

// MARK: - recvmmsg (a GNU extension)

/// One received message of a `CGoFetch_recvmmsg` batch.
struct CGoFetch_message_slot {
    void *base;        ///< receive buffer
    size_t capacity;   ///< its size
    size_t length;     ///< bytes received (set on return)
    int truncated;     ///< 1 when the message did not fit (MSG_TRUNC)
};

/// Receives up to `count` messages without blocking. Returns the number of
/// messages received, or -1 with errno set. The corresponding C function is
/// `recvmmsg`.
int CGoFetch_recvmmsg(int fd, struct CGoFetch_message_slot *slots, unsigned int count);

// MARK: - cachestat(2) (Linux 6.5; not in glibc 2.36)

struct CGoFetch_cachestat {
    uint64_t nr_cache;
    uint64_t nr_dirty;
    uint64_t nr_writeback;
    uint64_t nr_evicted;
    uint64_t nr_recently_evicted;
};

/// Page-cache statistics of `len` bytes at `off` (`len` 0 means to the end).
/// Returns 0 or -1 with errno set (ENOSYS on kernels before 6.5). The
/// corresponding system call is `cachestat`.
int CGoFetch_cachestat(int fd, uint64_t off, uint64_t len, struct CGoFetch_cachestat *out);

// MARK: - readahead(2) (a GNU extension)

/// The corresponding C function is `readahead`.
ssize_t CGoFetch_readahead(int fd, int64_t offset, size_t count);

// MARK: - fanotify (header not in Swift's Glibc module map)

/// The corresponding C function is `fanotify_init`.
int CGoFetch_fanotify_init(unsigned int flags, unsigned int event_f_flags);
/// The corresponding C function is `fanotify_mark`.
int CGoFetch_fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path);

/// `struct fanotify_event_metadata`, mirrored (checked with _Static_assert in the .c).
typedef struct {
    uint32_t event_len;
    uint8_t vers;
    uint8_t reserved;
    uint16_t metadata_len;
    uint64_t mask;
    int32_t fd;
    int32_t pid;
} CGoFetch_fanotify_event;

extern const unsigned int CGoFetch_FAN_CLASS_NOTIF;
extern const unsigned int CGoFetch_FAN_CLOEXEC;
extern const unsigned int CGoFetch_FAN_NONBLOCK;
extern const unsigned int CGoFetch_FAN_MARK_ADD;
extern const unsigned int CGoFetch_FAN_MARK_FILESYSTEM;
extern const uint64_t CGoFetch_FAN_OPEN;
extern const uint64_t CGoFetch_FAN_ACCESS;
extern const uint64_t CGoFetch_FAN_CLOSE_NOWRITE;
extern const uint64_t CGoFetch_FAN_Q_OVERFLOW;
extern const uint8_t CGoFetch_FANOTIFY_METADATA_VERSION;
/// Report the parent folder's file handle and the entry's name instead of a descriptor.
extern const unsigned int CGoFetch_FAN_REPORT_DFID_NAME;

/// The folder handle and name of an event of a `FAN_REPORT_DFID_NAME` group: finds
/// the `FAN_EVENT_INFO_TYPE_DFID_NAME` record among the event's `event_len` bytes.
/// Returns the `struct file_handle` (inside the event) and sets `fsid` and `name`
/// (NUL-terminated, inside the event); NULL when the event has no such record or
/// the record does not fit.
const void *CGoFetch_fanotify_dfid_name(const void *event, uint32_t event_len, uint64_t *fsid, const char **name);
/// Bytes of a `struct file_handle`, header included.
uint32_t CGoFetch_file_handle_size(const void *handle);
/// Opens the folder a handle names, `O_PATH`. The corresponding C function is
/// `open_by_handle_at` (needs CAP_DAC_READ_SEARCH).
int CGoFetch_open_folder_by_handle(int mount_fd, const void *handle);
/// A read-only descriptor on `path` that never blocks on opening (a FIFO, a tty),
/// for `open_by_handle_at`'s mount argument (which refuses `O_PATH` descriptors).
int CGoFetch_open_mount_reference(const char *path);
/// Opens a client's `path` (relative to `dirfd`) with `flags`, resolved without
/// following `/proc`'s magic links (`/proc/PID/cwd`, `/proc/PID/fd/N`,
/// `/proc/PID/root`): they would let a client name another process's files past
/// folders it cannot enter. Fails with ELOOP at a magic link, ENOSYS on kernels
/// before 5.6. The corresponding system call is `openat2` with `RESOLVE_NO_MAGICLINKS`.
int CGoFetch_open_no_magic_links(int dirfd, const char *path, int flags);
/// The file system id `statfs` gives for `fd`, as fanotify reports it.
int CGoFetch_fsid(int fd, uint64_t *fsid);

// MARK: - epoll and accept4 (not in Swift's Glibc module)

/// The corresponding C function is `epoll_create1(EPOLL_CLOEXEC)`.
int CGoFetch_epoll_create(void);

/// A counter for waking an epoll wait. The corresponding C function is
/// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`.
int CGoFetch_eventfd(void);
/// Adds (`add` 1), or removes (`add` 0), `fd` with an opaque token.
/// The corresponding C function is `epoll_ctl`.
int CGoFetch_epoll_control(int epfd, int add, int fd, uint32_t events, uint64_t token);
/// Waits up to `timeout_ms`; fills `tokens` and `events` for each ready fd.
/// The corresponding C function is `epoll_wait`.
int CGoFetch_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms);
/// Accepts without blocking, the new socket non-blocking and close-on-exec.
/// The corresponding C function is `accept4`.
int CGoFetch_accept(int fd);

extern const uint32_t CGoFetch_EPOLLIN;
extern const uint32_t CGoFetch_EPOLLRDHUP;

/// Names the calling thread for the kernel (`top -H`, `perf`, `/proc/PID/task/TID/comm`;
/// at most 15 bytes are kept). The corresponding C function is `pthread_setname_np`.
void CGoFetch_set_thread_name(const char *name);

// MARK: - Per-thread file-system identity (sys/fsuid.h is not in Glibc's module)

/// Sets this thread's file-system uid; returns the previous one. The corresponding
/// system call is `setfsuid` (per thread in the kernel, which is the point: an
/// executor thread opens a file as the client it works for).
int CGoFetch_setfsuid(uint32_t uid);
/// The corresponding system call is `setfsgid`.
int CGoFetch_setfsgid(uint32_t gid);
/// Sets this thread's supplementary groups only (the raw system call; glibc's
/// `setgroups` changes every thread of the process). The corresponding system call
/// is `setgroups`.
int CGoFetch_set_thread_groups(size_t count, const gid_t *groups);

// MARK: - Residency by mincore(2), for kernels without cachestat

/// Counts resident pages of `len` bytes at `off` (page aligned) by mapping them;
/// returns the count or -1 with errno set. The corresponding C function is `mincore`.
int64_t CGoFetch_resident_pages_mincore(int fd, uint64_t off, uint64_t len);

// MARK: - File-system type

/// The `f_type` magic of the file system holding `fd`, or -1 with errno set.
/// The corresponding C function is `fstatfs`.
int64_t CGoFetch_fs_type(int fd);
extern const int64_t CGoFetch_FUSE_SUPER_MAGIC;
/// Whether an `f_type` magic is a kernel pseudo file system (proc, sysfs, debugfs,
/// tracefs, securityfs, configfs, cgroup, bpf, devpts): no data to warm there, and a
/// client's path into one is refused.
int CGoFetch_is_pseudo_file_system(int64_t type);

// MARK: - O_NOATIME, O_PATH, SOCK_* flags as constants (macros do not import as values)

extern const int CGoFetch_O_NOATIME;
extern const int CGoFetch_O_PATH;
extern const int CGoFetch_SOCK_SEQPACKET;
extern const int CGoFetch_SOCK_NONBLOCK;
extern const int CGoFetch_SOCK_CLOEXEC;
extern const short CGoFetch_POLLRDHUP;
