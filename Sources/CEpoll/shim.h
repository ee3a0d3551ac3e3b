#ifndef WEBSOCKETS_CEPOLL_SHIM_H
#define WEBSOCKETS_CEPOLL_SHIM_H
/* What the WebSocket transport of our own uses (Linux only): Swift's Glibc module has no epoll or eventfd; and the
   allocator's figures (mallinfo2) for /metrics; accept4, which glibc declares only with _GNU_SOURCE, for the accept
   loop (a connection non-blocking and close-on-exec in one call). */
#ifdef __linux__
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>
#include <errno.h>
#include <sys/socket.h>

extern int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);

/* Accepts a connection on the listening socket `fd` with `flags` (SOCK_NONBLOCK, SOCK_CLOEXEC). */
static inline int cepoll_accept(int fd, int flags) { return accept4(fd, 0, 0, flags); }
#endif
#endif
