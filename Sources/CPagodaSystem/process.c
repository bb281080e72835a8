#define _GNU_SOURCE
#include "pagoda_process.h"
#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int pagoda_shm_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns) {
    struct timespec ts, *tsp = NULL;
    if (timeout_ns > 0) {
        ts.tv_sec = timeout_ns / 1000000000LL;
        ts.tv_nsec = timeout_ns % 1000000000LL;
        tsp = &ts;
    }
    long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, tsp, NULL, 0);
    if (r == 0) return 0;
    if (errno == EAGAIN) return 0;
    return errno;
}

int pagoda_shm_futex_wake(uint32_t *word, int n) {
    long r = syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
    return r < 0 ? 0 : (int)r;
}

int pagoda_set_parent_death_signal(int sig, int expected_parent) {
    if (prctl(PR_SET_PDEATHSIG, sig) != 0) return errno;
    if (expected_parent > 0 && getppid() != expected_parent) return ESRCH;
    return 0;
}

int pagoda_process_alive(int pid) {
    if (pid <= 0) return 0;
    if (kill(pid, 0) != 0 && errno == ESRCH) return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    // Format: pid (comm) S ...; comm may contain ')' so take the last one.
    char *close = NULL;
    for (char *p = buf; *p; p++) if (*p == ')') close = p;
    if (!close || close[1] != ' ') return 1;
    char state = close[2];
    return (state == 'Z' || state == 'X') ? 0 : 1;
}
