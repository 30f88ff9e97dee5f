// The eBPF trace source's loader: libbpf opens the CO-RE object, attaches every
// program by its SEC() name and hands the ring buffer to the ingest thread.
#include "CGoFetchBPF.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct CGoFetch_bpf {
    struct bpf_object *object;
    struct bpf_link *links[16];
    int link_count;
    struct ring_buffer *ring;
    int traced_fd;
    int spawners_fd;
    int dropped_fd;
    uint64_t lost;
    CGoFetch_bpf_record *staged;
    size_t staged_count;
    size_t staged_capacity;
};

_Static_assert(sizeof(CGoFetch_bpf_record) == 6 * 4 + 6 * 8 + 256, "gofetch_record layout");

// At most this many records per drain: the rest stay in the ring for the next one.
#define STAGED_MAX 65536

static int stage(void *context, void *data, size_t size) {
    struct CGoFetch_bpf *bpf = context;
    if (size < sizeof(CGoFetch_bpf_record)) return 0;
    if (bpf->staged_count == STAGED_MAX) {
        bpf->lost++;  // libbpf has consumed this one already; stop here, the rest waits
        return -1;
    }
    if (bpf->staged_count == bpf->staged_capacity) {
        size_t capacity = bpf->staged_capacity ? bpf->staged_capacity * 2 : 1024;
        CGoFetch_bpf_record *grown = realloc(bpf->staged, capacity * sizeof(*grown));
        if (!grown) { bpf->lost++; return 0; }  // the record is lost, not the source
        bpf->staged = grown;
        bpf->staged_capacity = capacity;
    }
    memcpy(&bpf->staged[bpf->staged_count++], data, sizeof(CGoFetch_bpf_record));
    return 0;
}

static int silent(enum libbpf_print_level level, const char *format, va_list args) {
    (void)level; (void)format; (void)args;
    return 0;
}

CGoFetch_bpf *CGoFetch_bpf_open(const char *path, char *error, size_t error_length) {
    libbpf_set_print(silent);
    struct CGoFetch_bpf *bpf = calloc(1, sizeof(*bpf));
    if (!bpf) { snprintf(error, error_length, "out of memory"); return NULL; }
    bpf->object = bpf_object__open_file(path, NULL);
    if (!bpf->object) {
        snprintf(error, error_length, "cannot open %s: %s", path, strerror(errno));
        free(bpf);
        return NULL;
    }
    int err = bpf_object__load(bpf->object);
    if (err) {
        snprintf(error, error_length, "the kernel refused to load %s: %s", path, strerror(-err));
        CGoFetch_bpf_close(bpf);
        return NULL;
    }
    struct bpf_program *program;
    bpf_object__for_each_program(program, bpf->object) {
        if (bpf->link_count == 16) break;
        struct bpf_link *link = bpf_program__attach(program);
        if (!link) {
            snprintf(error, error_length, "cannot attach %s: %s", bpf_program__name(program), strerror(errno));
            CGoFetch_bpf_close(bpf);
            return NULL;
        }
        bpf->links[bpf->link_count++] = link;
    }
    bpf->traced_fd = bpf_object__find_map_fd_by_name(bpf->object, "traced");
    bpf->spawners_fd = bpf_object__find_map_fd_by_name(bpf->object, "spawners");
    bpf->dropped_fd = bpf_object__find_map_fd_by_name(bpf->object, "dropped");
    int records = bpf_object__find_map_fd_by_name(bpf->object, "records");
    bpf->ring = records >= 0 ? ring_buffer__new(records, stage, bpf, NULL) : NULL;
    if (!bpf->ring || bpf->traced_fd < 0) {
        snprintf(error, error_length, "%s lacks its maps", path);
        CGoFetch_bpf_close(bpf);
        return NULL;
    }
    return bpf;
}

int CGoFetch_bpf_trace_pid(CGoFetch_bpf *bpf, uint32_t pid) {
    uint8_t one = 1;
    return bpf_map_update_elem(bpf->traced_fd, &pid, &one, BPF_ANY);
}

int CGoFetch_bpf_trace_children(CGoFetch_bpf *bpf, uint32_t pid) {
    uint8_t one = 1;
    return bpf_map_update_elem(bpf->spawners_fd, &pid, &one, BPF_ANY);
}

uint64_t CGoFetch_bpf_lost(CGoFetch_bpf *bpf) { return bpf->lost; }

int CGoFetch_bpf_fd(CGoFetch_bpf *bpf) { return ring_buffer__epoll_fd(bpf->ring); }

const CGoFetch_bpf_record *CGoFetch_bpf_consume(CGoFetch_bpf *bpf, size_t *count) {
    bpf->staged_count = 0;
    ring_buffer__consume(bpf->ring);
    *count = bpf->staged_count;
    return bpf->staged;
}

uint64_t CGoFetch_bpf_dropped(CGoFetch_bpf *bpf) {
    uint32_t zero = 0;
    uint64_t value = 0;
    if (bpf->dropped_fd >= 0) bpf_map_lookup_elem(bpf->dropped_fd, &zero, &value);
    return value;
}

void CGoFetch_bpf_close(CGoFetch_bpf *bpf) {
    if (!bpf) return;
    if (bpf->ring) ring_buffer__free(bpf->ring);
    for (int i = 0; i < bpf->link_count; i++) bpf_link__destroy(bpf->links[i]);
    if (bpf->object) bpf_object__close(bpf->object);
    free(bpf->staged);
    free(bpf);
}
