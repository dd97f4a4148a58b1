/* fs.c — see fs.h. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "gnrev/core/fs.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "gnrev/core/sysmem.h"

int gn_mkdir_p(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = buf + 1; *p; ++p)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(buf, 0775) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(buf, 0775) != 0 && errno != EEXIST ? -1 : 0;
}

/* The longest mount point of /proc/self/mountinfo that is a prefix of the absolute path, and its
 * type; "?" when not found. Octal escapes (\040 for a blank) are left as they are: the name is for
 * people. */
static void find_mount(const char *abs, char *mount, size_t mcap, char *type, size_t tcap) {
  snprintf(mount, mcap, "?");
  type[0] = '\0';
  FILE *fp = fopen("/proc/self/mountinfo", "r");
  if (!fp) return;
  char line[4096];
  size_t best = 0;
  while (fgets(line, sizeof line, fp)) {
    /* id parent major:minor root mount-point options [optional fields] - type source super-options */
    char mnt[1024], typ[64];
    if (sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1) continue;
    const char *dash = strstr(line, " - ");
    if (!dash || sscanf(dash + 3, "%63s", typ) != 1) continue;
    const size_t n = strlen(mnt);
    const bool prefix = strcmp(mnt, "/") == 0 || (strncmp(abs, mnt, n) == 0 && (abs[n] == '/' || abs[n] == '\0'));
    if (prefix && n >= best) {
      best = n;
      snprintf(mount, mcap, "%s", mnt);
      snprintf(type, tcap, "%s", typ);
    }
  }
  fclose(fp);
}

int gn_fs_space(const char *path, double *free_bytes, double *total_bytes) {
  struct statvfs v;
  if (statvfs(path, &v) != 0) return -1;
  *free_bytes = (double)v.f_bavail * (double)v.f_frsize;
  *total_bytes = (double)v.f_blocks * (double)v.f_frsize;
  return 0;
}

void gn_fs_describe(const char *path, char *buf, size_t cap) {
  double freeb = 0, total = 0;
  char abs[PATH_MAX];
  if (!realpath(path, abs) || gn_fs_space(abs, &freeb, &total) != 0) {
    snprintf(buf, cap, "its file system (%s: %s)", path, strerror(errno));
    return;
  }
  char mount[1024], type[64], f[32], t[32];
  find_mount(abs, mount, sizeof mount, type, sizeof type);
  gn_sysmem_str(freeb > 0 ? (size_t)freeb : 0, f, sizeof f);
  gn_sysmem_str(total > 0 ? (size_t)total : 0, t, sizeof t);
  snprintf(buf, cap, "the file system at %s%s%s%s has %s free of %s", mount, type[0] ? " (" : "", type,
           type[0] ? ")" : "", f, t);
}
