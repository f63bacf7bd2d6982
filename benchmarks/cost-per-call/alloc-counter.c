/*
 * alloc-counter: counts a process's heap allocations, for benchmarks/cost-per-call/cost.py.
 *
 * Loaded with LD_PRELOAD, it takes the place of malloc, calloc, realloc, posix_memalign, aligned_alloc and
 * memalign, forwards each to glibc's own (__libc_*), and adds one to a counter that lives in a shared file,
 * /dev/shm/alloc-count-PID (one 64-bit count), so the benchmark can read it while the process runs and after it
 * has exited. free is not wrapped: the figure is allocations, not frees.
 *
 * Build: cc -O2 -shared -fPIC -o alloc-counter.so alloc-counter.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

/* Until the shared counter is mapped (early in start-up, and while mapping it), counts go nowhere. */
static uint64_t unmapped_count;
static uint64_t *counter = &unmapped_count;

__attribute__((constructor)) static void map_counter(void) {
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/alloc-count-%d", (int)getpid());
    int file = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (file < 0) return;
    if (ftruncate(file, sizeof(uint64_t)) == 0) {
        void *shared = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, file, 0);
        if (shared != MAP_FAILED) counter = shared;
    }
    close(file);
}

static inline void count(void) { __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }

void *malloc(size_t size) { count(); return __libc_malloc(size); }
void *calloc(size_t count_, size_t size) { count(); return __libc_calloc(count_, size); }
void *realloc(void *pointer, size_t size) { count(); return __libc_realloc(pointer, size); }
void *memalign(size_t alignment, size_t size) { count(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { count(); return __libc_memalign(alignment, size); }
int posix_memalign(void **result, size_t alignment, size_t size) {
    count();
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *result = pointer;
    return 0;
}
