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

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/// `redisBufferWrite` without waiting, for a blocking context: sends what `c->obuf` holds with
/// `send(MSG_DONTWAIT)` and keeps what the socket did not take. A full send buffer (`EAGAIN`) or a
/// signal is not an error here (where `redisBufferWrite`, on a blocking context, first waits up to
/// the send timeout, then fails on `EAGAIN`); any other failure is recorded as the context's
/// `REDIS_ERR_IO`, as hiredis does. `*done` is 1 once the buffer is empty.
/// Written against hiredis 0.14's context (Debian 12's libhiredis-dev): `obuf` is an `sds` trimmed
/// with `sdsrange(s, int, int)`, as its own `redisBufferWrite` does; check it when moving to 1.x.
/// @return `REDIS_OK`, or `REDIS_ERR` with the context's error set.
static inline int chiredis_buffer_write_nowait(redisContext *c, int *done) {
    if (c->err) return REDIS_ERR;
    size_t length = sdslen(c->obuf);
    if (length > 0) {
        ssize_t sent = send(c->fd, c->obuf, length, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                c->err = REDIS_ERR_IO;
                snprintf(c->errstr, sizeof(c->errstr), "%s", strerror(errno));
                return REDIS_ERR;
            }
        } else if ((size_t)sent == length) {
            sdsfree(c->obuf);
            c->obuf = sdsempty();
            if (c->obuf == NULL) {
                c->err = REDIS_ERR_OOM;
                snprintf(c->errstr, sizeof(c->errstr), "Out of memory");
                return REDIS_ERR;
            }
        } else if (sent > 0) {
            sdsrange(c->obuf, (int)sent, -1);
        }
    }
    *done = sdslen(c->obuf) == 0;
    return REDIS_OK;
}
#endif
