// The eBPF trace source's loader through libbpf (Debian's libbpf-dev), a module
// of its own so only the trace source links libbpf. Every symbol is prefixed
// `CGoFetch_`; libbpf's headers stay in BPF.c.
#pragma once

#include <stddef.h>
#include <stdint.h>

/// One ring-buffer record; mirrors `struct gofetch_record` in bpf/gofetch.bpf.c.
typedef struct {
    uint32_t kind;
    uint32_t pid;
    uint32_t tid;
    int32_t fd;
    uint32_t uid;
    uint32_t gid;
    uint64_t time_ns;
    uint64_t duration_ns;
    uint64_t offset;
    uint64_t length;
    uint64_t device;
    uint64_t inode;
    char path[256];
} CGoFetch_bpf_record;

typedef struct CGoFetch_bpf CGoFetch_bpf;

/// Opens, loads and attaches the object at `path`; NULL with a message in `error` on failure.
CGoFetch_bpf *CGoFetch_bpf_open(const char *path, char *error, size_t error_length);
/// Traces process `pid` and the processes it forks from now on.
int CGoFetch_bpf_trace_pid(CGoFetch_bpf *bpf, uint32_t pid);
/// Traces the processes `pid` forks from now on (and theirs), not `pid` itself.
int CGoFetch_bpf_trace_children(CGoFetch_bpf *bpf, uint32_t pid);
/// Records lost in user space (more waiting than one drain takes).
uint64_t CGoFetch_bpf_lost(CGoFetch_bpf *bpf);
/// A descriptor that polls readable when records wait.
int CGoFetch_bpf_fd(CGoFetch_bpf *bpf);
/// Takes every waiting record; `*count` of them are at the returned pointer, valid until the next call.
const CGoFetch_bpf_record *CGoFetch_bpf_consume(CGoFetch_bpf *bpf, size_t *count);
/// Records the kernel side dropped because the ring buffer was full.
uint64_t CGoFetch_bpf_dropped(CGoFetch_bpf *bpf);
void CGoFetch_bpf_close(CGoFetch_bpf *bpf);
