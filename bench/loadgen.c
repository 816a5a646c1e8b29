/*
 * loadgen — paced, nginx-shaped syslog datagrams for the pixeld benchmark.
 *
 * Each datagram is exactly what nginx's `access_log syslog:…,facility=local3,tag=pixel` sends for the
 * `log_format pixel '$msec,$args'` line (no trailing newline):
 *
 *     <158>Nov 22 10:00:00 web-1 pixel: 1763805600.001,e=pageview&u=https%3A%2F%2F…&seq=1
 *
 * 150–300 bytes, varied args, a sequence number (`seq=`) in every message, and about 2 % of the
 * messages (--other-permille) sent with another facility (user, daemon, local0, local4, authpriv),
 * still tagged `pixel`, which the system under test must filter out. The content of message N is a
 * pure function of (N, --seed), so `loadgen --print FROM COUNT` reproduces any value for the
 * byte-for-byte check.
 *
 * Targets: udp:HOST:PORT (connected socket, blocking, like nginx's UDP syslog) or unix:PATH (unbound,
 * connected, NON-blocking datagram socket, exactly as nginx does it: a send that fails with EAGAIN
 * because the receiver's queue — net.unix.max_dgram_qlen — is full drops that line; it is counted
 * here as `sender_dropped`, and the next line is tried).
 *
 * Pacing: every --tick-us (default 100 µs) it sends, with sendmmsg, whatever the rate says is due
 * since the start; --rate 0 sends as fast as it can in batches of --batch. The run stops after
 * --duration seconds or --count messages, whichever comes first.
 *
 * Output (stdout, one JSON object): attempted, sent, sent_local3, sender_dropped,
 * sender_dropped_local3, errors, start_ns and end_ns (CLOCK_MONOTONIC, the same clock as Python's
 * time.monotonic_ns), elapsed_s, rate_achieved.
 *
 * Build: cc -O2 -Wall -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
#define MAX_DGRAM 512

static uint64_t seed = 1;
static int other_permille = 20;

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const char *events[] = {"pageview", "pageview", "pageview", "pageview", "click", "signup", "outbound", "scroll"};
static const char *paths[] = {
    "%2F", "%2Fpricing", "%2Fblog%2F", "%2Fblog%2Fcounting-without-cookies",
    "%2Fdocs%2Fgetting-started%3Fref%3Dnav", "%2Fabout", "%2Fcontact%23form",
    "%2Fshop%2Fitem%2F1234%3Fcolor%3Dblue%26size%3Dm", "%2Fsearch%3Fq%3Dprivacy%2Banalytics",
    "%2Fcaf%C3%A9%2Fmenu",
};
static const char *hosts[] = {"example.com", "www.example.org", "shop.example.net", "blog.example.io"};
static const char *referrers[] = {
    "", "https%3A%2F%2Fwww.google.com%2F", "https%3A%2F%2Fnews.ycombinator.com%2F",
    "https%3A%2F%2Fduckduckgo.com%2F", "https%3A%2F%2Ft.co%2Fabc123", "",
};
static const int widths[] = {360, 390, 414, 768, 1024, 1280, 1366, 1440, 1536, 1920, 2560};
static const int other_pris[] = {14, 30, 134, 166, 86};  /* user, daemon, local0, local4, authpriv (info) */
static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Is message `seq` a local3 one (to be kept)? */
static int is_local3(uint64_t seq) { return (int)(mix(seq ^ (seed * 0x5851f42d4c957f2dULL)) % 1000) >= other_permille; }

static char *put_str(char *p, const char *s) {
    while (*s) *p++ = *s++;
    return p;
}

static char *put_u64(char *p, uint64_t v, int min_digits) {
    char tmp[24];
    int k = 0;
    do { tmp[k++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (k < min_digits) tmp[k++] = '0';
    while (k) *p++ = tmp[--k];
    return p;
}

static char *put_hex32(char *p, uint32_t v) {
    static const char hex[] = "0123456789abcdef";
    for (int shift = 28; shift >= 0; shift -= 4) *p++ = hex[(v >> shift) & 15];
    return p;
}

/* Writes datagram `seq` into buf (NUL-terminated); returns its length. *value_offset gets the start of
 * the MESSAGE (what the systems must store). Hand-rolled formatting: several times faster than
 * sprintf, so that the generator is not what limits the "max" cells. */
static int make_datagram(uint64_t seq, char *buf, int *value_offset) {
    uint64_t r = mix(seq * 0x2545f4914f6cdd1dULL ^ seed);
    uint64_t r2 = mix(r);
    int pri = is_local3(seq) ? 158 : other_pris[r2 % N(other_pris)];
    uint64_t ms = seq;  /* one message per millisecond of "nginx time" */
    uint64_t secs = 1763805600ULL + ms / 1000;
    int sod = (int)((36000 + ms / 1000) % 86400);
    char *p = buf;
    *p++ = '<';
    p = put_u64(p, (uint64_t)pri, 1);
    p = put_str(p, ">Nov 22 ");
    p = put_u64(p, (uint64_t)(sod / 3600), 2);
    *p++ = ':';
    p = put_u64(p, (uint64_t)((sod / 60) % 60), 2);
    *p++ = ':';
    p = put_u64(p, (uint64_t)(sod % 60), 2);
    p = put_str(p, " web-");
    *p++ = (char)('1' + (int)(r % 4));
    p = put_str(p, " pixel: ");
    *value_offset = (int)(p - buf);
    p = put_u64(p, secs, 1);
    *p++ = '.';
    p = put_u64(p, ms % 1000, 3);
    p = put_str(p, ",e=");
    p = put_str(p, events[(r >> 8) % N(events)]);
    p = put_str(p, "&u=https%3A%2F%2F");
    p = put_str(p, hosts[(r >> 12) % N(hosts)]);
    p = put_str(p, paths[(r >> 16) % N(paths)]);
    const char *ref = referrers[(r >> 20) % N(referrers)];
    if (*ref) {
        p = put_str(p, "&r=");
        p = put_str(p, ref);
    }
    p = put_str(p, "&w=");
    p = put_u64(p, (uint64_t)widths[(r >> 24) % N(widths)], 1);
    p = put_str(p, "&sid=");
    p = put_hex32(p, (uint32_t)(r2 >> 8));
    if ((r >> 28) % 5 == 0) p = put_str(p, "&utm_source=newsletter&utm_medium=email");
    if ((r >> 32) % 20 == 0) p = put_str(p, "&q=say\\x22hi\\x22");  /* nginx's escape of '"' */
    p = put_str(p, "&seq=");
    p = put_u64(p, seq, 1);
    int n = (int)(p - buf);
    int target = 150 + (int)((r2 >> 40) % 151);  /* 150…300 bytes in all */
    if (n < target) {
        n += 3;
        memcpy(buf + n - 3, "&p=", 3);
        while (n < target) {
            buf[n] = alnum[(r2 + (uint64_t)n * 7) % (N(alnum) - 1)];
            n++;
        }
    }
    if (n > 300) n = 300;  /* never reached with the tables above; keeps the 150–300 promise */
    buf[n] = 0;
    return n;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --target udp:HOST:PORT|unix:PATH --rate N (0 = max) --duration SEC\n"
            "               [--count N] [--seed S] [--batch N] [--tick-us N] [--other-permille N] [--start SEQ]\n"
            "       loadgen --print FROM COUNT [--seed S] [--other-permille N]   (seq<TAB>local3<TAB>value)\n");
    exit(2);
}

static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

int main(int argc, char **argv) {
    const char *target = NULL;
    double rate = -1, duration = -1;
    uint64_t count = UINT64_MAX, start = 0;
    int batch = 64, tick_us = 100;
    int64_t print_from = -1, print_count = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), ""))
        if (!strcmp(a, "--target")) target = NEXT();
        else if (!strcmp(a, "--rate")) rate = atof(NEXT());
        else if (!strcmp(a, "--duration")) duration = atof(NEXT());
        else if (!strcmp(a, "--count")) count = strtoull(NEXT(), NULL, 10);
        else if (!strcmp(a, "--seed")) seed = strtoull(NEXT(), NULL, 10);
        else if (!strcmp(a, "--batch")) batch = atoi(NEXT());
        else if (!strcmp(a, "--tick-us")) tick_us = atoi(NEXT());
        else if (!strcmp(a, "--other-permille")) other_permille = atoi(NEXT());
        else if (!strcmp(a, "--start")) start = strtoull(NEXT(), NULL, 10);
        else if (!strcmp(a, "--print")) { print_from = atoll(NEXT()); print_count = atoll(NEXT()); }
        else usage();
    }
    if (batch < 1 || batch > MAX_BATCH || tick_us < 1) usage();

    if (print_from >= 0) {
        char buf[MAX_DGRAM];
        int off;
        for (int64_t s = print_from; s < print_from + print_count; s++) {
            make_datagram((uint64_t)s, buf, &off);
            printf("%" PRId64 "\t%d\t%s\n", s, is_local3((uint64_t)s), buf + off);
        }
        return 0;
    }
    if (!target || rate < 0 || duration <= 0) usage();

    int fd, is_unix = 0;
    if (!strncmp(target, "unix:", 5)) {
        is_unix = 1;
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(target + 5) >= sizeof(sun.sun_path)) { fprintf(stderr, "loadgen: path too long\n"); return 2; }
        strcpy(sun.sun_path, target + 5);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);  /* nginx: non-blocking, unbound */
        if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) { perror("loadgen: unix connect"); return 1; }
    } else if (!strncmp(target, "udp:", 4)) {
        char host[256];
        const char *hp = target + 4, *colon = strrchr(hp, ':');
        if (!colon || (size_t)(colon - hp) >= sizeof host) usage();
        memcpy(host, hp, colon - hp);
        host[colon - hp] = 0;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM}, *ai;
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) { fprintf(stderr, "loadgen: bad address\n"); return 2; }
        fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int sndbuf = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) { perror("loadgen: udp connect"); return 1; }
        freeaddrinfo(ai);
    } else usage();

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    prctl(PR_SET_TIMERSLACK, 1UL);

    static char bufs[MAX_BATCH][MAX_DGRAM];
    static struct iovec iov[MAX_BATCH];
    static struct mmsghdr msgs[MAX_BATCH];
    static int local3[MAX_BATCH];
    for (int i = 0; i < MAX_BATCH; i++) {
        iov[i].iov_base = bufs[i];
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    uint64_t seq = start, attempted = 0, sent = 0, sent_local3 = 0, dropped = 0, dropped_local3 = 0, errors = 0, errors_local3 = 0;
    const int64_t t0 = now_ns();
    const int64_t t_end = t0 + (int64_t)(duration * 1e9);
    int64_t t = t0;
    while (!stop_flag && attempted < count) {
        t = now_ns();
        if (t >= t_end) break;
        uint64_t due;
        if (rate > 0) {
            due = (uint64_t)((double)(t - t0) * rate / 1e9);
            if (due > count) due = count;
            if (due <= attempted) {
                struct timespec ts = {0, tick_us * 1000L};
                nanosleep(&ts, NULL);
                continue;
            }
        } else {
            due = attempted + (uint64_t)batch;
            if (due > count) due = count;
        }
        while (attempted < due && !stop_flag) {
            int n = (int)(due - attempted < (uint64_t)batch ? due - attempted : (uint64_t)batch);
            for (int i = 0; i < n; i++) {
                int off;
                iov[i].iov_len = (size_t)make_datagram(seq + (uint64_t)i, bufs[i], &off);
                local3[i] = bufs[i][1] == '1' && bufs[i][2] == '5' && bufs[i][3] == '8';
            }
            int done = 0;
            while (done < n) {
                int k = sendmmsg(fd, msgs + done, (unsigned)(n - done), 0);
                if (k < 0) {
                    if (errno == EINTR) continue;
                    k = 0;
                    /* The message at `done` was not sent: nginx drops it (EAGAIN) and moves on. */
                    if (errno == EAGAIN || errno == EWOULDBLOCK) {
                        dropped++;
                        dropped_local3 += (uint64_t)local3[done];
                    } else {
                        errors++;
                        errors_local3 += (uint64_t)local3[done];
                    }
                    done += 1;
                    continue;
                }
                for (int i = done; i < done + k; i++) sent_local3 += (uint64_t)local3[i];
                sent += (uint64_t)k;
                done += k;
            }
            attempted += (uint64_t)n;
            seq += (uint64_t)n;
        }
    }
    int64_t t1 = now_ns();
    double elapsed = (double)(t1 - t0) / 1e9;
    printf("{\"target\":\"%s\",\"unix\":%d,\"rate\":%.0f,\"attempted\":%" PRIu64 ",\"sent\":%" PRIu64
           ",\"sent_local3\":%" PRIu64 ",\"attempted_local3\":%" PRIu64 ",\"sender_dropped\":%" PRIu64
           ",\"sender_dropped_local3\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"start_seq\":%" PRIu64
           ",\"next_seq\":%" PRIu64 ",\"start_ns\":%" PRId64 ",\"end_ns\":%" PRId64
           ",\"elapsed_s\":%.6f,\"rate_achieved\":%.1f}\n",
           target, is_unix, rate, attempted, sent, sent_local3, sent_local3 + dropped_local3 + errors_local3, dropped, dropped_local3,
           errors, start, seq, t0, t1, elapsed, elapsed > 0 ? (double)attempted / elapsed : 0.0);
    return 0;
}
