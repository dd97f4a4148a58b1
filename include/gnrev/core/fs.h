/* fs.h — the file system facts and operations gnrev needs beyond stdio. */
#ifndef GNREV_CORE_FS_H
#define GNREV_CORE_FS_H

#include <stddef.h>

/* Local. mkdir -p: creates path and its missing parents (mode 0775); 0, or -1 with errno set. */
int gn_mkdir_p(const char *path);

/* Local. Free bytes (available to this user, statvfs f_bavail) and size of the file system holding
 * path (an existing file or folder); 0, or -1 with errno set. */
int gn_fs_space(const char *path, double *free_bytes, double *total_bytes);

/* Local. "the file system at <mount> (<type>) has <free> free of <total>" for messages (the space
 * the system reports), the mount point and type from /proc/self/mountinfo. */
void gn_fs_describe(const char *path, char *buf, size_t cap);

#endif
