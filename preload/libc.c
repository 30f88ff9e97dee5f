/* The libc functions the wrappers stand in for, resolved with dlsym(RTLD_NEXT). */
#include "shim.h"

/* ------------------------------------------------------------------------ */
/* Real functions                                                            */
/* ------------------------------------------------------------------------ */

/*
 * Resolved with dlsym(RTLD_NEXT). dlsym itself may allocate, and an interposed
 * malloc may open or read files before these are set, so every caller must
 * cope with NULL: the sys_* helpers below fall back to raw system calls.
 */
int (*r_open)(const char *, int, ...);
int (*r_open64)(const char *, int, ...);
int (*r_openat)(int, const char *, int, ...);
int (*r_openat64)(int, const char *, int, ...);
int (*r___open_2)(const char *, int);
int (*r___open64_2)(const char *, int);
int (*r___openat_2)(int, const char *, int);
int (*r___openat64_2)(int, const char *, int);
int (*r_openat2)(int, const char *, struct open_how *, size_t);
ssize_t (*r_read)(int, void *, size_t);
ssize_t (*r___read_chk)(int, void *, size_t, size_t);
ssize_t (*r_pread)(int, void *, size_t, off_t);
ssize_t (*r_pread64)(int, void *, size_t, off64_t);
ssize_t (*r___pread_chk)(int, void *, size_t, off_t, size_t);
ssize_t (*r___pread64_chk)(int, void *, size_t, off64_t, size_t);
ssize_t (*r_readv)(int, const struct iovec *, int);
ssize_t (*r_preadv)(int, const struct iovec *, int, off_t);
ssize_t (*r_preadv64)(int, const struct iovec *, int, off64_t);
ssize_t (*r_preadv2)(int, const struct iovec *, int, off_t, int);
ssize_t (*r_preadv64v2)(int, const struct iovec *, int, off64_t, int);
void *(*r_mmap)(void *, size_t, int, int, int, off_t);
void *(*r_mmap64)(void *, size_t, int, int, int, off64_t);
int (*r_close)(int);
int (*r_close_range)(unsigned int, unsigned int, int);
int (*r_dup2)(int, int);
int (*r_dup3)(int, int, int);
FILE *(*r_fopen)(const char *, const char *);
FILE *(*r_fopen64)(const char *, const char *);
size_t (*r_fread)(void *, size_t, size_t, FILE *);
size_t (*r___fread_chk)(void *, size_t, size_t, size_t, FILE *);
size_t (*r_fread_unlocked)(void *, size_t, size_t, FILE *);
size_t (*r___fread_unlocked_chk)(void *, size_t, size_t, size_t, FILE *);
int (*r_fclose)(FILE *);
void (*r__exit)(int);
void (*r__Exit)(int);

void resolve_all(void)
{
    RESOLVE(open); RESOLVE(open64); RESOLVE(openat); RESOLVE(openat64);
    RESOLVE(__open_2); RESOLVE(__open64_2); RESOLVE(__openat_2); RESOLVE(__openat64_2);
    RESOLVE(openat2);
    RESOLVE(read); RESOLVE(__read_chk); RESOLVE(pread); RESOLVE(pread64);
    RESOLVE(__pread_chk); RESOLVE(__pread64_chk);
    RESOLVE(readv); RESOLVE(preadv); RESOLVE(preadv64); RESOLVE(preadv2); RESOLVE(preadv64v2);
    RESOLVE(mmap); RESOLVE(mmap64);
    RESOLVE(close); RESOLVE(close_range); RESOLVE(dup2); RESOLVE(dup3);
    RESOLVE(fopen); RESOLVE(fopen64); RESOLVE(fread); RESOLVE(__fread_chk);
    RESOLVE(fread_unlocked); RESOLVE(__fread_unlocked_chk); RESOLVE(fclose);
    RESOLVE(_exit); RESOLVE(_Exit);
}
