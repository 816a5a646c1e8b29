#define _GNU_SOURCE
#include "cpixeld_system.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <link.h>
#include <pthread.h>
#include <spawn.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <linux/sock_diag.h>

#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif
#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

#define CPIXELD_MAX_BATCH 256
_Static_assert(sizeof(struct mmsghdr) >= sizeof(struct msghdr), "mmsghdr layout");
_Static_assert(CPIXELD_MSG_WAITFORONE == MSG_WAITFORONE, "MSG_WAITFORONE value");

void cpixeld_set_thread_name(const char *name) {
    char short_name[16];
    strncpy(short_name, name, sizeof short_name - 1);
    short_name[sizeof short_name - 1] = 0;
    prctl(PR_SET_NAME, short_name, 0, 0, 0);
}

int cpixeld_set_thread_nice(int nice) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}

int cpixeld_recvmmsg(int fd, cpixeld_datagram *slots, unsigned int count, int flags, uint32_t *dropped) {
    if (count > CPIXELD_MAX_BATCH) count = CPIXELD_MAX_BATCH;
    struct mmsghdr messages[CPIXELD_MAX_BATCH];
    struct iovec vectors[CPIXELD_MAX_BATCH];
    // Room for one SO_RXQ_OVFL control message per datagram.
    char control[CPIXELD_MAX_BATCH][CMSG_SPACE(sizeof(uint32_t))];
    memset(messages, 0, sizeof(struct mmsghdr) * count);
    for (unsigned int i = 0; i < count; i++) {
        vectors[i].iov_base = slots[i].buffer;
        vectors[i].iov_len = slots[i].capacity;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_control = control[i];
        messages[i].msg_hdr.msg_controllen = sizeof control[i];
    }
    int received;
    do {
        received = recvmmsg(fd, messages, count, flags, NULL);
    } while (received < 0 && errno == EINTR);
    if (received < 0) return -1;
    for (int i = 0; i < received; i++) {
        slots[i].length = messages[i].msg_len;
        slots[i].truncated = (messages[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&messages[i].msg_hdr); c != NULL;
             c = CMSG_NXTHDR(&messages[i].msg_hdr, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL && dropped != NULL) {
                memcpy(dropped, CMSG_DATA(c), sizeof(uint32_t));
            }
        }
    }
    return received;
}

int cpixeld_enable_drop_counter(int fd) {
    int one = 1;
    return setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
}

int cpixeld_socket_drops(int fd, uint32_t *drops) {
    // Sized for this header's fields; a newer kernel that knows more copies only as many (and says
    // so in `size`).
    uint32_t memory[SK_MEMINFO_VARS];
    socklen_t size = sizeof memory;
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, memory, &size) != 0) return -1;
    if (size < (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t)) {
        errno = ENOPROTOOPT;
        return -1;
    }
    *drops = memory[SK_MEMINFO_DROPS];
    return 0;
}

int cpixeld_set_receive_buffer(int fd, int bytes) {
    int effective = 0;
    socklen_t size = sizeof effective;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) != 0) return -1;
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &effective, &size) != 0) return -1;
    // The kernel keeps (and reports) twice what it granted: min(bytes, net.core.rmem_max) * 2.
    if (effective / 2 < bytes) {
        // Capped by net.core.rmem_max; SO_RCVBUFFORCE lifts the cap for privileged processes.
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) == 0) {
            size = sizeof effective;
            getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &effective, &size);
        }
    }
    return effective;
}

/// Whether the object had relocations applied to its read-only segments (DT_TEXTREL): the dynamic
/// loader then wrote to pages that look read-only, and dropping them would bring back the unrelocated
/// bytes. Debian's libraries and pixeld (lld refuses text relocations) have none; this is a guard.
static int has_text_relocations(const struct dl_phdr_info *info) {
    for (int index = 0; index < info->dlpi_phnum; index++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[index];
        if (header->p_type != PT_DYNAMIC) continue;
        for (const ElfW(Dyn) *entry = (const ElfW(Dyn) *)(info->dlpi_addr + header->p_vaddr); entry->d_tag != DT_NULL; entry++) {
            if (entry->d_tag == DT_TEXTREL) return 1;
            if (entry->d_tag == DT_FLAGS && (entry->d_un.d_val & DF_TEXTREL) != 0) return 1;
        }
    }
    return 0;
}

static int release_object_pages(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    if (info->dlpi_name != NULL && strstr(info->dlpi_name, "linux-vdso") != NULL) return 0;
    if (has_text_relocations(info)) return 0;
    size_t *released = data;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int index = 0; index < info->dlpi_phnum; index++) {
        const ElfW(Phdr) *header = &info->dlpi_phdr[index];
        if (header->p_type != PT_LOAD || header->p_memsz == 0) continue;
        uintptr_t start = (info->dlpi_addr + header->p_vaddr) & ~(page - 1);
        uintptr_t end = (info->dlpi_addr + header->p_vaddr + header->p_memsz + page - 1) & ~(page - 1);
        // Writable segments may hold relocated or written data: never drop those.
        if ((header->p_flags & PF_W) == 0 && madvise((void *)start, end - start, MADV_DONTNEED) == 0) {
            *released += end - start;
        }
    }
    return 0;
}

size_t cpixeld_release_code_pages(void) {
    size_t released = 0;
    dl_iterate_phdr(release_object_pages, &released);
    return released;
}

int cpixeld_exec_sibling(const char *name, char **argv) {
    // Set in the program we exec: if that program is (a copy of, or a link to) this one, it would
    // exec itself for ever; the second time round it runs the command itself instead.
    static const char *const guard = "PIXELD_EXEC_SIBLING_FROM";
    if (getenv(guard) != NULL) {
        errno = ELOOP;
        return -1;
    }
    char self[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
    if (length < 0) return -1;
    self[length] = 0;
    char path[PATH_MAX];
    memcpy(path, self, (size_t)length + 1);
    char *slash = strrchr(path, '/');
    if (slash == NULL || (size_t)(slash + 1 - path) + strlen(name) + 1 > sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(slash + 1, name);
    if (access(path, X_OK) != 0) return -1;
    if (setenv(guard, self, 1) != 0) return -1;
    char *own_name = argv[0];
    argv[0] = (char *)name;
    execv(path, argv);
    int failure = errno;
    argv[0] = own_name;
    unsetenv(guard);
    errno = failure;
    return -1;
}

int cpixeld_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int cpixeld_spawn_close_from(void *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}
