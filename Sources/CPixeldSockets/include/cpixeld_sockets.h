#ifndef CPIXELD_SOCKETS_H
#define CPIXELD_SOCKETS_H
#include <stddef.h>
#include <stdint.h>
#endif
