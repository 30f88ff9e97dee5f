/*
 * The shim's path filter (preload/filter.c) without LD_PRELOAD: each line of
 * stdin is one case, "include<TAB>exclude<TAB>path" with colon-separated prefix
 * lists as GOFETCH_INCLUDE and GOFETCH_EXCLUDE take them; prints 1 when the path
 * is wanted, 0 when not (test_preload.py runs tests/contracts/path-filter.json).
 */
#include "../../preload/shim.h"

int main(void)
{
    char line[3 * PATH_MAX];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        char *include = line, *exclude = strchr(include, '\t');
        if (!exclude) return 2;
        *exclude++ = '\0';
        char *path = strchr(exclude, '\t');
        if (!path) return 2;
        *path++ = '\0';
        g_include.n = g_exclude.n = 0;
        g_prefix_used = 0;
        prefix_parse(&g_exclude, exclude);
        prefix_parse(&g_include, include);
        normalise_path(path);
        printf("%d\n", path_wanted(path, strlen(path)) ? 1 : 0);
    }
    return 0;
}
