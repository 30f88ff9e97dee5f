#include "CGoFetchSQLite.h"

#include <sqlite3.h>

int gofetch_sqlite_use_multithread(void)
{
    return sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
}
