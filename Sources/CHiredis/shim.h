#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H
// Debian 12 ships hiredis 0.14.1 as <hiredis/hiredis.h>; pkg-config adds -I/usr/include/hiredis.
#include <hiredis/hiredis.h>

/// The context's error text as a C string (Swift imports `char errstr[128]` as a tuple).
static inline const char *chiredis_errstr(const redisContext *c) { return c->errstr; }
/// The context's error code (`REDIS_ERR_IO`, `REDIS_ERR_EOF`, …); 0 while healthy.
static inline int chiredis_err(const redisContext *c) { return c->err; }
/// The context's socket, for `shutdown(2)` from another thread to unblock a pending read.
static inline int chiredis_fd(const redisContext *c) { return c->fd; }
#endif
