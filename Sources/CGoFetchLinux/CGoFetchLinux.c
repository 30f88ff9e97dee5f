#define _GNU_SOURCE
#include "CGoFetchLinux.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/fsuid.h>
#include <sys/vfs.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <sys/fanotify.h>
#include <stddef.h>
#include <sys/socket.h>
#include <unistd.h>

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <linux/magic.h>
#include <linux/openat2.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif

struct CGoFetch_kernel_cachestat_range {
    uint64_t off;
    uint64_t len;
};

_Static_assert(sizeof(struct CGoFetch_cachestat) == 40, "struct cachestat is five u64 in the kernel ABI");

int CGoFetch_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        return -1;
    }
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

int CGoFetch_recvmmsg(int fd, struct CGoFetch_message_slot *slots, unsigned int count) {
    enum { max_batch = 64 };
    if (count > max_batch) count = max_batch;
    struct mmsghdr headers[max_batch];
    struct iovec vectors[max_batch];
    memset(headers, 0, sizeof(struct mmsghdr) * count);
    for (unsigned int i = 0; i < count; i++) {
        vectors[i].iov_base = slots[i].base;
        vectors[i].iov_len = slots[i].capacity;
        headers[i].msg_hdr.msg_iov = &vectors[i];
        headers[i].msg_hdr.msg_iovlen = 1;
    }
    int received = recvmmsg(fd, headers, count, MSG_DONTWAIT, NULL);
    if (received < 0) return -1;
    for (int i = 0; i < received; i++) {
        slots[i].length = headers[i].msg_len;
        slots[i].truncated = (headers[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    }
    return received;
}

int CGoFetch_cachestat(int fd, uint64_t off, uint64_t len, struct CGoFetch_cachestat *out) {
    struct CGoFetch_kernel_cachestat_range range = { off, len };
    return (int)syscall(__NR_cachestat, fd, &range, out, 0);
}

ssize_t CGoFetch_readahead(int fd, int64_t offset, size_t count) {
    return readahead(fd, offset, count);
}

int CGoFetch_fanotify_init(unsigned int flags, unsigned int event_f_flags) {
    return fanotify_init(flags, event_f_flags);
}

int CGoFetch_fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path) {
    return fanotify_mark(fd, flags, mask, dirfd, path);
}

_Static_assert(sizeof(CGoFetch_fanotify_event) == sizeof(struct fanotify_event_metadata), "fanotify_event_metadata size");
_Static_assert(offsetof(CGoFetch_fanotify_event, mask) == offsetof(struct fanotify_event_metadata, mask), "mask offset");
_Static_assert(offsetof(CGoFetch_fanotify_event, fd) == offsetof(struct fanotify_event_metadata, fd), "fd offset");
_Static_assert(offsetof(CGoFetch_fanotify_event, pid) == offsetof(struct fanotify_event_metadata, pid), "pid offset");

const unsigned int CGoFetch_FAN_REPORT_DFID_NAME = FAN_REPORT_DFID_NAME;

static uint64_t fsid_bits(const __kernel_fsid_t *fsid)
{
    uint64_t bits;
    memcpy(&bits, fsid, sizeof bits);
    return bits;
}

const void *CGoFetch_fanotify_dfid_name(const void *event, uint32_t event_len, uint64_t *fsid, const char **name) {
    const struct fanotify_event_metadata *m = event;
    const unsigned char *end = (const unsigned char *)event + event_len;
    const unsigned char *p = (const unsigned char *)event + m->metadata_len;
    while (p + sizeof(struct fanotify_event_info_header) <= end) {
        const struct fanotify_event_info_header *h = (const void *)p;
        if (h->len < sizeof *h || p + h->len > end)
            return NULL;
        if (h->info_type == FAN_EVENT_INFO_TYPE_DFID_NAME) {
            const struct fanotify_event_info_fid *fid = (const void *)p;
            const unsigned char *handle = fid->handle;
            if (handle + sizeof(struct file_handle) > p + h->len)
                return NULL;
            uint32_t bytes = ((const struct file_handle *)handle)->handle_bytes;
            const unsigned char *text = handle + sizeof(struct file_handle) + bytes;
            if (bytes > MAX_HANDLE_SZ || text >= p + h->len || memchr(text, 0, (size_t)(p + h->len - text)) == NULL)
                return NULL;
            *fsid = fsid_bits(&fid->fsid);
            *name = (const char *)text;
            return handle;
        }
        p += h->len;
    }
    return NULL;
}

uint32_t CGoFetch_file_handle_size(const void *handle) {
    return (uint32_t)sizeof(struct file_handle) + ((const struct file_handle *)handle)->handle_bytes;
}

int CGoFetch_open_folder_by_handle(int mount_fd, const void *handle) {
    /* open_by_handle_at takes a non-const handle; it does not write to it. */
    return open_by_handle_at(mount_fd, (struct file_handle *)(uintptr_t)handle, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

int CGoFetch_open_mount_reference(const char *path) {
    return open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
}

void CGoFetch_set_thread_name(const char *name) {
    char short_name[16];
    strncpy(short_name, name, sizeof short_name - 1);
    short_name[sizeof short_name - 1] = '\0';
    pthread_setname_np(pthread_self(), short_name);
}

int CGoFetch_open_no_magic_links(int dirfd, const char *path, int flags) {
    struct open_how how = {.flags = (uint64_t)(unsigned)flags, .resolve = RESOLVE_NO_MAGICLINKS};
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

int CGoFetch_fsid(int fd, uint64_t *fsid) {
    struct statfs s;
    if (fstatfs(fd, &s) != 0)
        return -1;
    memcpy(fsid, &s.f_fsid, sizeof *fsid);
    return 0;
}

const unsigned int CGoFetch_FAN_CLASS_NOTIF = FAN_CLASS_NOTIF;
const unsigned int CGoFetch_FAN_CLOEXEC = FAN_CLOEXEC;
const unsigned int CGoFetch_FAN_NONBLOCK = FAN_NONBLOCK;
const unsigned int CGoFetch_FAN_MARK_ADD = FAN_MARK_ADD;
const unsigned int CGoFetch_FAN_MARK_FILESYSTEM = FAN_MARK_FILESYSTEM;
const uint64_t CGoFetch_FAN_OPEN = FAN_OPEN;
const uint64_t CGoFetch_FAN_ACCESS = FAN_ACCESS;
const uint64_t CGoFetch_FAN_CLOSE_NOWRITE = FAN_CLOSE_NOWRITE;
const uint64_t CGoFetch_FAN_Q_OVERFLOW = FAN_Q_OVERFLOW;
const uint8_t CGoFetch_FANOTIFY_METADATA_VERSION = FANOTIFY_METADATA_VERSION;

const int CGoFetch_O_NOATIME = O_NOATIME;
const int CGoFetch_O_PATH = O_PATH;
const int CGoFetch_SOCK_SEQPACKET = SOCK_SEQPACKET;
const int CGoFetch_SOCK_NONBLOCK = SOCK_NONBLOCK;
const int CGoFetch_SOCK_CLOEXEC = SOCK_CLOEXEC;
const short CGoFetch_POLLRDHUP = POLLRDHUP;

int CGoFetch_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int CGoFetch_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

int CGoFetch_epoll_control(int epfd, int add, int fd, uint32_t events, uint64_t token) {
    struct epoll_event event = { .events = events, .data.u64 = token };
    return epoll_ctl(epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &event);
}

int CGoFetch_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms) {
    enum { max_batch = 256 };
    struct epoll_event ready[max_batch];
    if (max > max_batch) max = max_batch;
    int count = epoll_wait(epfd, ready, max, timeout_ms);
    for (int i = 0; i < count; i++) {
        tokens[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return count;
}

int CGoFetch_accept(int fd) {
    return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

const uint32_t CGoFetch_EPOLLIN = EPOLLIN;
const uint32_t CGoFetch_EPOLLRDHUP = EPOLLRDHUP;

int CGoFetch_setfsuid(uint32_t uid) {
    return setfsuid(uid);
}

int CGoFetch_setfsgid(uint32_t gid) {
    return setfsgid(gid);
}

int64_t CGoFetch_resident_pages_mincore(int fd, uint64_t off, uint64_t len) {
    if (len == 0) return 0;
    long page = sysconf(_SC_PAGESIZE);
    void *map = mmap(NULL, len, PROT_NONE, MAP_SHARED, fd, (off_t)off);
    if (map == MAP_FAILED) return -1;
    size_t pages = (len + (size_t)page - 1) / (size_t)page;
    unsigned char *vector = malloc(pages);
    if (vector == NULL) {
        munmap(map, len);
        errno = ENOMEM;
        return -1;
    }
    int64_t resident = -1;
    if (mincore(map, len, vector) == 0) {
        resident = 0;
        for (size_t i = 0; i < pages; i++) resident += vector[i] & 1;
    }
    int saved = errno;
    free(vector);
    munmap(map, len);
    errno = saved;
    return resident;
}

int CGoFetch_set_thread_groups(size_t count, const gid_t *groups) {
    return (int)syscall(SYS_setgroups, count, groups);
}

int64_t CGoFetch_fs_type(int fd) {
    struct statfs info;
    if (fstatfs(fd, &info) != 0) return -1;
    return (int64_t)info.f_type;
}

const int64_t CGoFetch_FUSE_SUPER_MAGIC = 0x65735546;

int CGoFetch_is_pseudo_file_system(int64_t type) {
    switch (type) {
    case PROC_SUPER_MAGIC: case SYSFS_MAGIC: case DEBUGFS_MAGIC: case TRACEFS_MAGIC:
    case SECURITYFS_MAGIC: case 0x62656570 /* configfs */: case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC: case BPF_FS_MAGIC: case DEVPTS_SUPER_MAGIC:
        return 1;
    default:
        return 0;
    }
}
