/* The connection to the daemon: connect, trust, back off, reconnect. */
#include "shim.h"

/* ------------------------------------------------------------------------ */
/* Connection to the daemon                                                  */
/* ------------------------------------------------------------------------ */

bool fd_is_socket(int fd, uint64_t dev, uint64_t ino)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
           (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

enum { OPEN_FAILED, OPEN_UP, OPEN_UNTRUSTED };

/*
 * Connects to the daemon. Only a daemon of this user's or root's is trusted: the
 * socket's folder may have been made first by someone else (/tmp/gofetch-<uid>
 * without XDG_RUNTIME_DIR), who would otherwise receive every path this process
 * opens. Anyone else's socket is never written to, nor tried again.
 */
int open_socket(void)
{
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return OPEN_FAILED;
    if (connect(s, (const struct sockaddr *)&g_addr, g_addrlen) != 0) {
        sys_close(s);
        return OPEN_FAILED;
    }
    struct ucred peer;
    socklen_t peer_len = sizeof peer;
    if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) != 0 ||
        (peer.uid != getuid() && peer.uid != 0)) {
        sys_close(s);
        return OPEN_UNTRUSTED;
    }
    /* The kernel clamps to net.core.wmem_max: ask for everything it allows. */
    int big = INT_MAX / 2;
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);

    int reserved = atomic_load(&g_sock_fd);
    if (reserved >= 0 && fd_is_socket(reserved, atomic_load(&g_sock_dev), atomic_load(&g_sock_ino)) &&
        sys_dup3(s, reserved, O_CLOEXEC) == reserved) {
        sys_close(s);
        s = reserved;
    } else {
        int high = fcntl(s, F_DUPFD_CLOEXEC, SOCK_FD_FLOOR);
        if (high >= 0) {
            sys_close(s);
            s = high;
        }
    }
    struct stat st;
    if (fstat(s, &st) != 0) {
        sys_close(s);
        atomic_store(&g_sock_fd, -1);
        return OPEN_FAILED;
    }
    atomic_store(&g_sock_dev, (uint64_t)st.st_dev);
    atomic_store(&g_sock_ino, (uint64_t)st.st_ino);
    atomic_store(&g_sock_fd, s);
    return OPEN_UP;
}


/*
 * Until a daemon answers, every event is dropped on a path that costs one
 * coarse clock read; a connect() is tried at most once per back-off period.
 */
bool link_connect_slow(void)
{
    if (atomic_load_explicit(&g_link, memory_order_acquire) != LINK_DOWN)
        return false;
    uint64_t now = coarse_ns();
    if (now < atomic_load_explicit(&g_retry_at, memory_order_relaxed))
        return false;
    int expect = LINK_DOWN;
    if (!atomic_compare_exchange_strong(&g_link, &expect, LINK_CONNECTING))
        return false;
    int saved = errno;
    int opened = open_socket();
    bool ok = opened == OPEN_UP;
    if (ok) {
        g_backoff_ns = 0;
        atomic_store_explicit(&g_link, LINK_UP, memory_order_release);
        send_orphans();
    } else if (opened == OPEN_UNTRUSTED) {
        atomic_store_explicit(&g_link, LINK_NEVER, memory_order_release);
    } else {
        g_backoff_ns = g_backoff_ns ? g_backoff_ns * 2 : BACKOFF_MIN_NS;
        if (g_backoff_ns > BACKOFF_MAX_NS)
            g_backoff_ns = BACKOFF_MAX_NS;
        atomic_store_explicit(&g_retry_at, now + g_backoff_ns, memory_order_relaxed);
        atomic_store_explicit(&g_link, LINK_DOWN, memory_order_release);
    }
    errno = saved;
    return ok;
}

/* An up link goes down; the next connect() is tried after `backoff_ns` (0: at the next event). */
static void link_down(uint64_t backoff_ns)
{
    int expect = LINK_UP;
    if (!atomic_compare_exchange_strong(&g_link, &expect, LINK_CONNECTING))
        return;
    g_backoff_ns = backoff_ns;
    atomic_store_explicit(&g_retry_at, backoff_ns ? coarse_ns() + backoff_ns : 0, memory_order_relaxed);
    atomic_store_explicit(&g_link, LINK_DOWN, memory_order_release);
}

/* The daemon went away (a send failed): reconnect after a back-off. */
void link_lost(void)
{
    link_down(BACKOFF_MIN_NS);
}

/*
 * The application closed or replaced our socket's fd number: it is theirs now.
 * The daemon itself is still there, so the next event connects again at once
 * rather than after a back-off (which would lose everything the job opens in it).
 */
void sock_forget(void)
{
    atomic_store(&g_sock_fd, -1);
    link_down(0);
}
