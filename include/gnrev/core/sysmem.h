/* sysmem.h — what the operating system says about memory, and byte counts for people. */
#ifndef GNREV_CORE_SYSMEM_H
#define GNREV_CORE_SYSMEM_H

#include <stddef.h>

/* Local. Memory available on this node now (MemAvailable), in bytes; 0 if unknown. */
size_t gn_sysmem_available(void);

/* Local. "1.23 GiB" style (binary units; whole bytes below 1 KiB). */
void gn_sysmem_str(size_t bytes, char *buf, size_t cap);

#endif
