#ifndef CGOFETCH_SQLITE_H
#define CGOFETCH_SQLITE_H

/*
 * sqlite3_config is variadic, which Swift cannot call. Sets SQLite's default
 * threading mode to multi-thread (no mutex per connection call): GRDB already
 * gives each connection to one thread at a time. Must run before SQLite
 * initialises (the first connection); returns SQLITE_OK, or SQLITE_MISUSE after.
 */
int gofetch_sqlite_use_multithread(void);

#endif
