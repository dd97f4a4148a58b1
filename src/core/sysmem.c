/* sysmem.c — memory facts of this node (sysmem.h). */
#include "gnrev/core/sysmem.h"

#include <stdio.h>
#include <unistd.h>

size_t gn_sysmem_available(void) {
  FILE *fp = fopen("/proc/meminfo", "r");
  size_t kb = 0;
  if (fp) {
    char line[256];
    while (fgets(line, sizeof line, fp))
      if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1) break;
    fclose(fp);
  }
  if (kb == 0) {
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) return (size_t)pages * (size_t)page;
  }
  return kb * 1024;
}

void gn_sysmem_str(size_t bytes, char *buf, size_t cap) {
  const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", v, unit[u]);
}

