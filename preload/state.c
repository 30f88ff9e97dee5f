/* Process-wide state (its types and the reasons for them are in shim.h). */
#include "shim.h"

_Atomic int g_init = INIT_NONE;
bool g_active;                    /* false: GOFETCH_DISABLE or init failed */
uint64_t g_flush_ns = 2000000;
_Atomic pid_t g_pid;
_Atomic int32_t g_worker = GF_UNKNOWN_WORKER;
_Atomic uint32_t g_epoch = GF_UNKNOWN_EPOCH;
_Atomic(const _Atomic uint32_t *) g_epoch_cell;
_Atomic int g_epoch_cells;
_Atomic uint64_t g_dropped;
struct prefix_list g_exclude, g_include;
char g_prefix_store[16384];
size_t g_prefix_used;
struct sockaddr_un g_addr;
socklen_t g_addrlen;
_Atomic int g_link = LINK_DOWN;
_Atomic uint64_t g_retry_at;      /* CLOCK_MONOTONIC_COARSE ns */
uint64_t g_backoff_ns;            /* only touched by the LINK_CONNECTING owner */
_Atomic int g_sock_fd = -1;
_Atomic uint64_t g_sock_dev, g_sock_ino;
struct fd_slot g_fds[FD_TABLE_SIZE];
_Atomic(struct tbuf *) g_bufs;
pthread_key_t g_key;
bool g_key_ok;
__thread struct tstate ts __attribute__((tls_model("initial-exec")));
