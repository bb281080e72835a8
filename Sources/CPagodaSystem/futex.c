#define _GNU_SOURCE
#include "CPagodaSystem.h"
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

void pagoda_futex_wait(uint32_t *addr, uint32_t expected) {
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

void pagoda_futex_wake(uint32_t *addr, int count) {
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}
