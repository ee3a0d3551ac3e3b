#ifndef WEBSOCKETS_CLAUNCH_SHIM_H
#define WEBSOCKETS_CLAUNCH_SHIM_H
#include <spawn.h>
#include <signal.h>
#include <sys/types.h>

/* glibc declares these only under _GNU_SOURCE, which Swift's Glibc module is not built with. */
static const short WS_POSIX_SPAWN_SETSID = 0x80;
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *file_actions, int from);
/* The CPU affinity mask (a cpu_set_t, also GNU-only: passed as bytes). */
extern int sched_getaffinity(pid_t pid, size_t cpusetsize, void *mask);
#endif
