// gofetch's eBPF trace source: file opens, reads and closes of the traced process
// trees, and the pages they add to the page cache (misses), through a ring buffer.
// Tracepoints only (stable across kernels); CO-RE against the running kernel's BTF.
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define PATH_MAX_BYTES 256

enum gofetch_kind {
    GOFETCH_OPEN = 1,
    GOFETCH_READ = 2,
    GOFETCH_CLOSE = 4,
    GOFETCH_MISS = 7,
    GOFETCH_EXIT = 8,
};

#define S_IFMT 00170000
#define S_IFREG 0100000
#define AT_FDCWD -100

// One record of the ring buffer; mirrored by CGoFetch_bpf_record in the C shim.
struct gofetch_record {
    __u32 kind;
    __u32 pid;
    __u32 tid;
    __s32 fd;
    __u32 uid;
    __u32 gid;
    __u64 time_ns;
    __u64 duration_ns;
    __u64 offset;
    __u64 length;
    __u64 device;
    __u64 inode;
    char path[PATH_MAX_BYTES];
};

struct pending {
    __u64 start_ns;
    __u64 arg;      // open: the user pointer to the path; read: the fd
    __u64 offset;   // open: the dirfd; read: the file position (pread: its offset)
    __u64 device;   // read: the file's device and inode, from the kernel's struct file
    __u64 inode;
};

// Processes (tgids) being traced; children join at fork.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, __u32);
    __type(value, __u8);
} traced SEC(".maps");

// Processes whose children are traced, but not themselves (gofetch, while it spawns the job).
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u8);
} spawners SEC(".maps");

// Calls in flight, by thread (LRU: a thread killed mid-call leaves no entry for good).
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, __u32);
    __type(value, struct pending);
} inflight SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 8 << 20);
} records SEC(".maps");

// Records the ring buffer had no room for (the job is never made to wait).
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} dropped SEC(".maps");

static __always_inline int is_traced(__u32 tgid) {
    return bpf_map_lookup_elem(&traced, &tgid) != 0;
}

static __always_inline struct gofetch_record *reserve(void) {
    struct gofetch_record *record = bpf_ringbuf_reserve(&records, sizeof(*record), 0);
    if (!record) {
        __u32 zero = 0;
        __u64 *count = bpf_map_lookup_elem(&dropped, &zero);
        if (count) __sync_fetch_and_add(count, 1);
    }
    return record;
}

static __always_inline void fill(struct gofetch_record *record, __u32 kind, __u64 id, __s32 fd, __u64 start_ns,
                                 __u64 duration_ns, __u64 offset, __u64 length) {
    __u64 credentials = bpf_get_current_uid_gid();
    record->kind = kind;
    record->pid = id >> 32;
    record->tid = (__u32)id;
    record->fd = fd;
    record->uid = (__u32)credentials;
    record->gid = credentials >> 32;
    record->time_ns = start_ns;
    record->duration_ns = duration_ns;
    record->offset = offset;
    record->length = length;
    record->device = 0;
    record->inode = 0;
    record->path[0] = 0;
}

// A new process (not a thread) of a traced process, or of a spawner, is traced.
SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child) {
    __u32 child_tgid = child->tgid;
    if (child_tgid != (__u32)child->pid) return 0;  // a thread: its process is what counts
    __u32 parent_tgid = parent->tgid;
    if (!is_traced(parent_tgid) && !bpf_map_lookup_elem(&spawners, &parent_tgid)) return 0;
    __u8 one = 1;
    bpf_map_update_elem(&traced, &child_tgid, &one, BPF_ANY);
    return 0;
}

// A traced process ended: forget it (the map stays small in a long-running daemon).
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task) {
    __u32 tgid = task->tgid;
    if (tgid != (__u32)task->pid || !is_traced(tgid)) return 0;
    bpf_map_delete_elem(&traced, &tgid);
    struct gofetch_record *record = reserve();
    if (!record) return 0;
    fill(record, GOFETCH_EXIT, ((__u64)tgid << 32) | tgid, -1, bpf_ktime_get_ns(), 0, 0, 0);
    bpf_ringbuf_submit(record, 0);
    return 0;
}

// The open file behind descriptor `fd` of the current task (NULL when there is none).
static __always_inline struct file *file_of(__u32 fd) {
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct file **table = BPF_CORE_READ(task, files, fdt, fd);
    unsigned int max = BPF_CORE_READ(task, files, fdt, max_fds);
    if (!table || fd >= max) return 0;
    struct file *file = 0;
    bpf_probe_read_kernel(&file, sizeof(file), &table[fd]);
    return file;
}

static __always_inline int enter(__u64 arg, __u64 offset) {
    __u64 id = bpf_get_current_pid_tgid();
    if (!is_traced(id >> 32)) return 0;
    __u32 tid = (__u32)id;
    struct pending call = { .start_ns = bpf_ktime_get_ns(), .arg = arg, .offset = offset };
    bpf_map_update_elem(&inflight, &tid, &call, BPF_ANY);
    return 0;
}

// Reads of regular files only (not pipes or sockets), with the file's identity and,
// for read(2), its position.
static __always_inline int enter_read(__u32 fd, __u64 offset, int positional) {
    __u64 id = bpf_get_current_pid_tgid();
    if (!is_traced(id >> 32)) return 0;
    struct file *file = file_of(fd);
    if (!file) return 0;
    umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
    if ((mode & S_IFMT) != S_IFREG) return 0;
    __u32 tid = (__u32)id;
    struct pending call = {
        .start_ns = bpf_ktime_get_ns(), .arg = fd,
        .offset = positional ? offset : (__u64)BPF_CORE_READ(file, f_pos),
        .device = BPF_CORE_READ(file, f_inode, i_sb, s_dev),
        .inode = BPF_CORE_READ(file, f_inode, i_ino),
    };
    bpf_map_update_elem(&inflight, &tid, &call, BPF_ANY);
    return 0;
}

// The device and inode of the file behind descriptor `fd`, when there is one.
static __always_inline void identify(struct gofetch_record *record, __u32 fd) {
    struct file *file = file_of(fd);
    if (file) {
        record->device = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
        record->inode = BPF_CORE_READ(file, f_inode, i_ino);
    }
}

// The end of a call `enter` or `enter_read` saw begin: one record when it succeeded.
static __always_inline int exit_call(struct trace_event_raw_sys_exit *ctx, __u32 kind) {
    __u64 id = bpf_get_current_pid_tgid();
    __u32 tid = (__u32)id;
    struct pending *call = bpf_map_lookup_elem(&inflight, &tid);
    if (!call) return 0;
    long ret = ctx->ret;
    struct gofetch_record *record = ret >= 0 ? reserve() : 0;
    if (record) {
        __u64 duration_ns = bpf_ktime_get_ns() - call->start_ns;
        if (kind == GOFETCH_OPEN) {
            // offset: the dirfd a relative path is relative to; length: the path's bytes read (256: cut).
            fill(record, GOFETCH_OPEN, id, (__s32)ret, call->start_ns, duration_ns, call->offset, 0);
            long copied = bpf_probe_read_user_str(record->path, sizeof(record->path), (const void *)call->arg);
            record->length = copied > 0 ? copied : 0;
            identify(record, (__u32)ret);
        } else {
            fill(record, GOFETCH_READ, id, (__s32)call->arg, call->start_ns, duration_ns, call->offset, (__u64)ret);
            record->device = call->device;
            record->inode = call->inode;
        }
        bpf_ringbuf_submit(record, 0);
    }
    bpf_map_delete_elem(&inflight, &tid);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int on_enter_openat(struct trace_event_raw_sys_enter *ctx) { return enter(ctx->args[1], ctx->args[0]); }

SEC("tracepoint/syscalls/sys_exit_openat")
int on_exit_openat(struct trace_event_raw_sys_exit *ctx) { return exit_call(ctx, GOFETCH_OPEN); }

SEC("tracepoint/syscalls/sys_enter_read")
int on_enter_read(struct trace_event_raw_sys_enter *ctx) { return enter_read(ctx->args[0], 0, 0); }

SEC("tracepoint/syscalls/sys_enter_pread64")
int on_enter_pread64(struct trace_event_raw_sys_enter *ctx) { return enter_read(ctx->args[0], ctx->args[3], 1); }

SEC("tracepoint/syscalls/sys_exit_read")
int on_exit_read(struct trace_event_raw_sys_exit *ctx) { return exit_call(ctx, GOFETCH_READ); }

SEC("tracepoint/syscalls/sys_exit_pread64")
int on_exit_pread64(struct trace_event_raw_sys_exit *ctx) { return exit_call(ctx, GOFETCH_READ); }

SEC("tracepoint/syscalls/sys_enter_close")
int on_enter_close(struct trace_event_raw_sys_enter *ctx) {
    __u64 id = bpf_get_current_pid_tgid();
    if (!is_traced(id >> 32)) return 0;
    struct gofetch_record *record = reserve();
    if (!record) return 0;
    fill(record, GOFETCH_CLOSE, id, (__s32)ctx->args[0], bpf_ktime_get_ns(), 0, 0, 0);
    identify(record, (__u32)ctx->args[0]);
    bpf_ringbuf_submit(record, 0);
    return 0;
}

// A page (folio) entering the page cache on behalf of a traced process: a miss.
SEC("tracepoint/filemap/mm_filemap_add_to_page_cache")
int on_add_to_page_cache(struct trace_event_raw_mm_filemap_op_page_cache *ctx) {
    __u64 id = bpf_get_current_pid_tgid();
    if (!is_traced(id >> 32)) return 0;
    struct gofetch_record *record = reserve();
    if (!record) return 0;
    fill(record, GOFETCH_MISS, id, -1, bpf_ktime_get_ns(), 0, ctx->index, 1ULL << ctx->order);  // length: pages
    record->device = ctx->s_dev;
    record->inode = ctx->i_ino;
    bpf_ringbuf_submit(record, 0);
    return 0;
}
