#ifndef CPIXELD_SYSTEM_H
#define CPIXELD_SYSTEM_H
// Linux calls pixeld needs that Swift's Glibc module does not expose (they need _GNU_SOURCE or are
// variadic). Every symbol is prefixed `cpixeld_`. Nothing here allocates or keeps state.
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// Names the calling thread (first 15 bytes), as shown by `top -H` and /proc/PID/task/*/comm.
void cpixeld_set_thread_name(const char *name);

/// Sets the calling thread's nice value (-20…19; Linux keeps it per thread), e.g. to let a receive
/// thread pre-empt the process's other threads and a co-located Redis when a datagram arrives.
/// Going below the current value needs CAP_SYS_NICE (or RLIMIT_NICE). @return 0, or -1 with errno set.
int cpixeld_set_thread_nice(int nice);

/// One received datagram's slot for `cpixeld_recvmmsg`.
typedef struct cpixeld_datagram {
    void *buffer;        ///< where the bytes go
    size_t capacity;     ///< buffer size; one more byte than the largest accepted datagram
    size_t length;       ///< out: bytes received (== capacity means truncated)
    int truncated;       ///< out: MSG_TRUNC was set
} cpixeld_datagram;

/// `MSG_WAITFORONE` (a GNU flag Swift's Glibc module may not expose): `recvmmsg` returns as soon as one
/// datagram is there, with whatever else is already queued, instead of waiting to fill every slot.
#define CPIXELD_MSG_WAITFORONE 0x10000

/// Receives up to `count` datagrams with one `recvmmsg(2)` call.
/// @param flags e.g. MSG_DONTWAIT or CPIXELD_MSG_WAITFORONE; the socket's own timeout applies to the
///   wait for the first datagram unless MSG_DONTWAIT is given.
/// @param dropped out: the kernel's cumulative drop counter (SO_RXQ_OVFL), when enabled and seen; else unchanged.
/// @return datagrams received (>= 1), or -1 with errno set.
int cpixeld_recvmmsg(int fd, cpixeld_datagram *slots, unsigned int count, int flags, uint32_t *dropped);

/// Enables SO_RXQ_OVFL (kernel drop counter in each receive's control data). Returns 0 or -1/errno.
int cpixeld_enable_drop_counter(int fd);

/// Reads the socket's drop counter now (`getsockopt(SO_MEMINFO)`, `SK_MEMINFO_DROPS`): the counter
/// SO_RXQ_OVFL reports, `sk_drops`, as it is at the call rather than as it was when the next
/// received datagram was queued. One system call: not for every receive at high rates.
/// @param drops out: the counter (cumulative since the socket was made; wraps at 2^32).
/// @return 0, or -1 with errno set.
int cpixeld_socket_drops(int fd, uint32_t *drops);

/// Sets SO_RCVBUF, retrying with SO_RCVBUFFORCE (works as root) when the kernel caps the value.
/// @return the effective size the kernel reports (it doubles the request), or -1 with errno set.
int cpixeld_set_receive_buffer(int fd, int bytes);

/// Unmaps the code pages start-up touched, so that a long-running process keeps resident only the
/// code it goes on using. pixeld is one binary (ingest, consume, report, the dashboard with
/// SwiftNIO, swift-crypto, Foundation): 35 MB of code, which the kernel maps 64 KiB around each page
/// fault ("fault-around"; `MADV_RANDOM` does not change that), so start-up left ~15 MB of it
/// resident in `pixeld ingest`, most of it never run again.
/// For every loaded object (the executable and its shared libraries, not the vDSO), its read-only
/// segments get `MADV_DONTNEED`: clean file pages, still in the page cache, that come back with a
/// minor fault on their next use. Writable segments are left alone (relocated or written data).
/// @return the bytes of read-only segments released, or 0 when nothing could be advised.
size_t cpixeld_release_code_pages(void);

/// Replaces the process with the program `name` found in the directory of the running executable
/// (`/proc/self/exe`, symbolic links resolved), with `argv` as its arguments except `argv[0]`, which
/// becomes `name`. Same process id, environment (plus `PIXELD_EXEC_SIBLING_FROM`, this program's
/// path) and open files.
/// @return only when it could not: -1 with errno set — ENOENT: no such program next to this one;
///   ELOOP: this process was itself exec'd by this function (the sibling is this program again).
int cpixeld_exec_sibling(const char *name, char **argv);

/// pipe2(fds, O_CLOEXEC): a pipe whose ends no process spawned meanwhile by another thread inherits.
int cpixeld_pipe_cloexec(int fds[2]);

/// Adds "close every descriptor from `lowest` up" to `actions` (glibc's
/// `posix_spawn_file_actions_addclosefrom_np`, 2.34+), so that a spawned child keeps only the
/// descriptors set up for it, not every one this process has open without close-on-exec (or that
/// another thread opened and had not yet marked close-on-exec). File actions run in the order they
/// were added: add this after the `dup2`s that put descriptors below `lowest`.
/// @param actions a `posix_spawn_file_actions_t *` (as `void *`: including <spawn.h> here would make
///   Swift see that type as this module's, and every file that makes one would need to import it).
/// @return 0, or an error number (as the posix_spawn_file_actions functions do; errno is not set).
int cpixeld_spawn_close_from(void *actions, int lowest);
#endif
