#ifndef WEBSOCKETS_CEPOLL_SHIM_H
#define WEBSOCKETS_CEPOLL_SHIM_H
/* What the WebSocket transport of our own uses (Linux only): Swift's Glibc module has no epoll or eventfd; and the
   allocator's figures (mallinfo2) for /metrics. */
#ifdef __linux__
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>
#include <errno.h>
#endif
#endif
