/*
 * sink — a do-nothing syslog receiver: batched recvmmsg on one UDP or unix datagram socket, counts
 * what arrives and throws it away. It shows what this machine can deliver to a single receiving
 * thread at all, the ceiling for pixeld, rsyslog and syslog-ng in the same benchmark.
 *
 * Counts every datagram, the local3 ones (`<158>` prefix, what the other systems would keep), bytes,
 * the shortest and longest datagram, and the CLOCK_MONOTONIC time of the first and last arrival.
 * On SIGTERM/SIGINT it drains what the socket still holds, prints one JSON object and exits.
 *
 * usage: sink --udp HOST:PORT | --unix PATH  [--rcvbuf BYTES (default 4194304, like pixeld)] [--batch N]
 * Build: cc -O2 -Wall -o sink sink.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
#define SLOT 65536

static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void usage(void) {
    fprintf(stderr, "usage: sink --udp HOST:PORT | --unix PATH [--rcvbuf BYTES] [--batch N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *udp = NULL, *unix_path = NULL;
    int rcvbuf = 4 << 20, batch = 64;
    for (int i = 1; i < argc; i++) {
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), ""))
        if (!strcmp(argv[i], "--udp")) udp = NEXT();
        else if (!strcmp(argv[i], "--unix")) unix_path = NEXT();
        else if (!strcmp(argv[i], "--rcvbuf")) rcvbuf = atoi(NEXT());
        else if (!strcmp(argv[i], "--batch")) batch = atoi(NEXT());
        else usage();
    }
    if ((!udp) == (!unix_path) || batch < 1 || batch > MAX_BATCH) usage();

    int fd;
    if (unix_path) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(unix_path) >= sizeof sun.sun_path) usage();
        strcpy(sun.sun_path, unix_path);
        unlink(unix_path);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0) { perror("sink: bind"); return 1; }
        chmod(unix_path, 0666);
    } else {
        char host[256];
        const char *colon = strrchr(udp, ':');
        if (!colon || (size_t)(colon - udp) >= sizeof host) usage();
        memcpy(host, udp, colon - udp);
        host[colon - udp] = 0;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM}, *ai;
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) usage();
        fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) { perror("sink: bind"); return 1; }
        freeaddrinfo(ai);
    }
    if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);

    struct sigaction sa = {.sa_handler = on_signal};  /* no SA_RESTART: a signal interrupts recvmmsg */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    static struct mmsghdr msgs[MAX_BATCH];
    static struct iovec iov[MAX_BATCH];
    char *bufs = malloc((size_t)SLOT * (size_t)batch);
    for (int i = 0; i < batch; i++) {
        iov[i].iov_base = bufs + (size_t)i * SLOT;
        iov[i].iov_len = SLOT;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    printf("{\"ready\":true}\n");
    fflush(stdout);

    uint64_t total = 0, local3 = 0, bytes = 0, calls = 0;
    unsigned min_len = UINT32_MAX, max_len = 0;
    int64_t first_ns = 0, last_ns = 0;
    int draining = 0;
    for (;;) {
        if (stop_flag && !draining) draining = 1;
        int n = recvmmsg(fd, msgs, (unsigned)batch, draining ? MSG_DONTWAIT : MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            perror("sink: recvmmsg");
            break;
        }
        calls++;
        last_ns = now_ns();
        if (!first_ns) first_ns = last_ns;
        for (int i = 0; i < n; i++) {
            unsigned len = msgs[i].msg_len;
            const char *b = bufs + (size_t)i * SLOT;
            bytes += len;
            if (len < min_len) min_len = len;
            if (len > max_len) max_len = len;
            if (len > 5 && b[0] == '<' && b[1] == '1' && b[2] == '5' && b[3] == '8' && b[4] == '>') local3++;
        }
        total += (uint64_t)n;
    }
    if (unix_path) unlink(unix_path);
    printf("{\"received\":%" PRIu64 ",\"local3\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"calls\":%" PRIu64
           ",\"min_len\":%u,\"max_len\":%u,\"first_ns\":%" PRId64 ",\"last_ns\":%" PRId64 "}\n",
           total, local3, bytes, calls, total ? min_len : 0, max_len, first_ns, last_ns);
    return 0;
}
