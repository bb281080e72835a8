// CPagodaKernels: only what Swift cannot express well (CPU affinity, futex, prefetch). Keep it tiny.
#ifndef CPAGODA_KERNELS_H
#define CPAGODA_KERNELS_H
#include <stdint.h>
#include "pagoda_process.h"

/// Pins the calling thread to one CPU. Returns 0 on success, an errno value otherwise.
int pagoda_pin_thread_to_cpu(int cpu);
/// Number of CPUs this process may run on (sched_getaffinity).
int pagoda_available_cpus(void);

#endif
