/* fs.h — the file system facts and operations gnrev needs beyond stdio. */
#ifndef GNREV_CORE_FS_H
#define GNREV_CORE_FS_H

/* Local. mkdir -p: creates path and its missing parents (mode 0775); 0, or -1 with errno set. */
int gn_mkdir_p(const char *path);

#endif
