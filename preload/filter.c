/* The path filter: include and exclude prefixes, the program's own files (tests/contracts/path-filter.json). */
#include "shim.h"

/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

void prefix_add(struct prefix_list *l, const char *s, size_t len)
{
    while (len > 1 && s[len - 1] == '/')
        len--;
    if (len == 0 || l->n >= MAX_PREFIXES || g_prefix_used + len + 1 > sizeof g_prefix_store)
        return;
    char *dst = g_prefix_store + g_prefix_used;
    memcpy(dst, s, len);
    dst[len] = '\0';
    g_prefix_used += len + 1;
    l->s[l->n] = dst;
    l->len[l->n] = len;
    l->n++;
}

void prefix_parse(struct prefix_list *l, const char *spec)
{
    while (*spec) {
        const char *end = strchr(spec, ':');
        size_t len = end ? (size_t)(end - spec) : strlen(spec);
        if (len && spec[0] == '/')
            prefix_add(l, spec, len);
        spec += len;
        if (*spec == ':')
            spec++;
    }
}

/* Length of the longest prefix of l that p lies under (component-wise), or 0. */
size_t prefix_match(const struct prefix_list *l, const char *p, size_t plen)
{
    size_t best = 0;
    for (int i = 0; i < l->n; i++) {
        size_t n = l->len[i];
        if (n > plen || n <= best || memcmp(p, l->s[i], n) != 0)
            continue;
        if (n == 1 || p[n] == '/' || p[n] == '\0')
            best = n;
    }
    return best;
}

bool path_wanted(const char *p, size_t len)
{
    if (strstr(p, "/site-packages/") || strstr(p, "/dist-packages/") || strstr(p, "/__pycache__/"))
        return false;
    size_t exc = prefix_match(&g_exclude, p, len);
    if (g_include.n)
        return prefix_match(&g_include, p, len) > exc;
    return exc == 0;
}

/*
 * Lexically normalises an absolute path in place: drops "." components and empty
 * ones, and resolves ".." against the component before it (as Python's
 * os.path.abspath does; symlinks are left alone).
 */
void normalise_path(char *p)
{
    char *out = p;                       /* p[0] == '/' */
    const char *in = p;
    while (*in) {
        while (*in == '/')
            in++;
        const char *end = in;
        while (*end && *end != '/')
            end++;
        size_t n = (size_t)(end - in);
        if (n == 0 || (n == 1 && in[0] == '.')) {
            /* nothing */
        } else if (n == 2 && in[0] == '.' && in[1] == '.') {
            while (out > p && *--out != '/')
                ;
        } else {
            *out++ = '/';
            memmove(out, in, n);
            out += n;
        }
        in = end;
    }
    if (out == p)
        *out++ = '/';
    *out = '\0';
}

/*
 * A program in <P>/bin/ keeps its own files in <P>: an interpreter its standard
 * library under <P>/lib and <P>/include, a Python virtual environment also its
 * <P>/pyvenv.cfg (read at every start). None of them is training data. With
 * venv_only, only where <P>/pyvenv.cfg exists (a path the program was started by
 * may be a user's script, whose <P>/lib is none of the program's business).
 */
void exclude_install_of(const char *program, bool venv_only)
{
    char path[PATH_MAX];
    size_t n = strlen(program), c = 0;
    if (program[0] != '/') {             /* a relative path: from where we are */
        if (!getcwd(path, sizeof path) || path[0] != '/')
            return;
        c = strlen(path);
        path[c++] = '/';
    }
    if (c + n >= sizeof path)
        return;
    memcpy(path + c, program, n + 1);
    normalise_path(path);
    char *slash = strrchr(path, '/');
    *slash = '\0';                       /* path = the program's directory */
    size_t dlen = (size_t)(slash - path);
    if (dlen < 4 || strcmp(path + dlen - 4, "/bin") != 0)
        return;
    size_t plen = dlen - 4;              /* path[0, plen) = <P> */
    char buf[PATH_MAX + 16];
    memcpy(buf, path, plen);
    memcpy(buf + plen, "/pyvenv.cfg", 12);
    if (venv_only && access(buf, F_OK) != 0)
        return;
    static const char *const own[] = {"/lib", "/include", "/pyvenv.cfg"};
    for (size_t i = 0; i < sizeof own / sizeof *own; i++) {
        size_t k = strlen(own[i]);
        memcpy(buf + plen, own[i], k + 1);
        prefix_add(&g_exclude, buf, plen + k);
    }
}

/*
 * The running binary's install (/proc/self/exe, symlinks resolved), and the
 * virtual environment of the path it was started by (execve's, or argv[0] as a
 * shebang line gives it): a venv's bin/python is a symlink to the interpreter it
 * was made from, while the venv's own files are next to the link.
 */
void exclude_own_install(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        if (exe[0] == '/')
            exclude_install_of(exe, false);
    }
    const char *started = (const char *)getauxval(AT_EXECFN);
    if (started && *started)
        exclude_install_of(started, true);
    const char *argv0 = program_invocation_name;
    if (argv0 && strchr(argv0, '/') && !(started && strcmp(argv0, started) == 0))
        exclude_install_of(argv0, true);
}
