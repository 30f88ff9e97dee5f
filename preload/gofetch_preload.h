/*
 * gofetch preload shim: wire format (docs/wire-format.md, version 1) and the
 * one function the shim exports besides the libc functions it interposes.
 */
#ifndef GOFETCH_PRELOAD_H
#define GOFETCH_PRELOAD_H

#include <stdint.h>

#define GF_MAGIC0 0x47
#define GF_MAGIC1 0x46
#define GF_VERSION 1
#define GF_SOURCE_PRELOAD 1

#define GF_KIND_OPEN 1
#define GF_KIND_READ 2
#define GF_KIND_MMAP 3
#define GF_KIND_CLOSE 4
#define GF_KIND_EPOCH 5
#define GF_KIND_LOOKAHEAD 6

#define GF_FLAG_STDIO (1u << 0)
#define GF_FLAG_PATH_TRUNCATED (1u << 1)
#define GF_FLAG_VECTORED (1u << 2)
#define GF_FLAG_POSITIONAL (1u << 3)
/* bit 4: the start of an announcement (lookahead records only) */
#define GF_FLAG_WARMED_AT_OPEN (1u << 5)   /* open: the shim asked for the whole file (open_readahead.c) */

#define GF_MAX_MESSAGE 65536
#define GF_MAX_PATH 4096
#define GF_UNKNOWN_WORKER (-1)
#define GF_UNKNOWN_EPOCH 0xFFFFFFFFu

/* Every integer is little-endian; the shim only builds on little-endian hosts. */
struct gf_header {
    uint8_t magic[2];
    uint8_t version;
    uint8_t source;
    uint16_t record_count;
    uint16_t header_size;
    uint32_t pid;
    uint32_t dropped;
    uint64_t sent_ns;
};

struct gf_record {
    uint16_t size;
    uint8_t kind;
    uint8_t flags;
    uint32_t tid;
    int32_t fd;
    int32_t worker_id;
    uint64_t time_ns;
    uint64_t dev;
    uint64_t ino;
    uint64_t offset;
    uint64_t length;
    uint32_t duration_ns;
    uint32_t epoch;
    /* open records continue with: uint16_t path_len; char path[path_len]; zero padding */
};

_Static_assert(sizeof(struct gf_header) == 24, "wire header is 24 bytes");
_Static_assert(sizeof(struct gf_record) == 64, "wire record is 64 bytes");

/* Bytes a record takes: 64, or for open and lookahead records 64 + the u16 path
 * length + the path's bytes, padded with zeros to a multiple of 8. */
static inline uint32_t gf_record_size(uint8_t kind, uint32_t path_len)
{
    if (kind != GF_KIND_OPEN && kind != GF_KIND_LOOKAHEAD)
        return (uint32_t)sizeof(struct gf_record);
    return (uint32_t)((sizeof(struct gf_record) + 2 + path_len + 7) & ~(uint32_t)7);
}

/*
 * Sets the data-loader worker id and training epoch stamped on every record the
 * process sends from now on (-1 / 0xFFFFFFFF mean unknown); once an epoch cell was
 * shared (gofetch_preload_share_epoch), the epoch comes from the cell and this one
 * is ignored. Safe to call from any thread; a Python hook reaches it with
 * ctypes.CDLL(None).gofetch_preload_set_worker.
 */
void gofetch_preload_set_worker(int worker_id, unsigned epoch);

/*
 * Hands the shim the process family's epoch cell: a file (a memfd sealed against
 * shrinking, F_SEAL_SHRINK) whose first four bytes hold the current epoch. The shim
 * maps it itself, keeps the mapping for the process's life (forked children inherit
 * it) and from then on stamps every record with the epoch read from it at that
 * moment, ignoring set_worker's epoch: a parent that writes the cell retags its
 * forked children's records at once. Returns 0, or -1 when fd is not a regular file
 * of at least four bytes sealed against shrinking, mapping it failed, or four cells
 * were handed over already. Keeps errno.
 */
int gofetch_preload_share_epoch(int fd);

#endif
