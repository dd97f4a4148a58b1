/* lock.c — the out_dir lock (lock.h). Two runs writing one out_dir interleave their appends to
 * run.h5 and leave it unreadable; the lock refuses the second at start.
 *
 * The file is created with O_CREAT | O_EXCL, which is atomic on local file systems and on NFSv3+
 * and Lustre, and holds "key=value" lines: host, pid, start (the holder's start time in clock ticks
 * since boot, /proc/<pid>/stat field 22, so a recycled pid is not mistaken for the holder), since
 * (UTC) and, under SLURM, slurm_job: a requeued job keeps its job id and may land on another node,
 * where the lock of its killed previous run could not be checked otherwise. Only rank 0 touches
 * the file; the outcome is agreed over all ranks. */
#include "gnrev/run/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "gnrev/core/err.h"

enum { TEXT_CAP = 1024, HOST_CAP = 256, ATTEMPTS = 4 };

struct gn_lock {
  char path[4096 + 32]; /* <out_dir>/gnrev.lock */
  char text[TEXT_CAP];  /* what we wrote into it */
  bool held;            /* rank 0 holds the file */
};

/* What a lock file says. */
typedef struct {
  char host[HOST_CAP];
  long pid;
  unsigned long long start; /* 0 when not recorded */
  char since[64];
  char slurm_job[64]; /* "" when not run under SLURM */
} holder;

/* Local. Start time of process pid in clock ticks since boot; 0 if unknown. */
static unsigned long long process_start(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *fp = fopen(path, "r");
  if (!fp) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  /* Fields after the command name, which may hold blanks and parentheses: start after the last ')'. */
  const char *p = strrchr(buf, ')');
  if (!p) return 0;
  unsigned long long start = 0;
  int field = 2;
  for (const char *q = p + 1; *q && field < 22; ++q)
    if (*q == ' ') {
      ++field;
      if (field == 22) start = strtoull(q + 1, NULL, 10);
    }
  return start;
}

/* Local. Whether the holder still runs on this host. */
static bool holder_alive(const holder *h) {
  if (h->pid <= 0) return false;
  if (kill((pid_t)h->pid, 0) != 0 && errno == ESRCH) return false;
  /* The pid exists: it is the holder unless its start time says it is a later process. */
  const unsigned long long now = process_start(h->pid);
  return !(h->start != 0 && now != 0 && now != h->start);
}

static void parse_holder(const char *text, holder *h) {
  memset(h, 0, sizeof *h);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    const size_t len = strcspn(p, "\n");
    char line[TEXT_CAP];
    snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), p);
    if (strncmp(line, "host=", 5) == 0) snprintf(h->host, sizeof h->host, "%.*s", HOST_CAP - 1, line + 5);
    else if (strncmp(line, "pid=", 4) == 0) h->pid = strtol(line + 4, NULL, 10);
    else if (strncmp(line, "start=", 6) == 0) h->start = strtoull(line + 6, NULL, 10);
    else if (strncmp(line, "since=", 6) == 0) snprintf(h->since, sizeof h->since, "%.63s", line + 6);
    else if (strncmp(line, "slurm_job=", 10) == 0) snprintf(h->slurm_job, sizeof h->slurm_job, "%.63s", line + 10);
  }
}

/* Local. The file's text (at most TEXT_CAP - 1 bytes); -1 with errno when it cannot be read. */
static int read_text(const char *path, char *text) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  ssize_t n = read(fd, text, TEXT_CAP - 1);
  int e = errno;
  close(fd);
  if (n < 0) {
    errno = e;
    return -1;
  }
  text[n] = '\0';
  return 0;
}

static int write_all(int fd, const char *text) {
  size_t left = strlen(text);
  while (left > 0) {
    ssize_t n = write(fd, text, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    text += n;
    left -= (size_t)n;
  }
  return 0;
}

static int refuse(const gn_lock *lk, const char *out_dir, const holder *h, const char *host) {
  char since[96] = "";
  if (h->since[0]) snprintf(since, sizeof since, " since %s", h->since);
  if (strcmp(h->host, host) == 0)
    GN_FAIL(GN_EINPUT,
            "out_dir %s is in use by gnrev_mpi pid %ld on this host (%s)%s, lock file %s: one run per "
            "out_dir; wait for that run to end, or give this one another out_dir",
            out_dir, h->pid, h->host, since, lk->path);
  GN_FAIL(GN_EINPUT,
          "out_dir %s is in use by gnrev_mpi pid %ld on host %s%s, lock file %s: one run per out_dir. "
          "gnrev cannot tell from here whether that run still goes on: if no run uses this out_dir any "
          "more, delete the lock file",
          out_dir, h->pid, h->host[0] ? h->host : "(unnamed)", since, lk->path);
}

/* Rank 0. Says on stderr that out_dir's lock was left by a holder that no longer runs, and what
 * becomes of it (`fate`: taken over, or what a run would do). */
static void say_stale(const char *out_dir, const holder *h, const char *host, const char *fate) {
  if (strcmp(h->host, host) == 0)
    fprintf(stderr,
            "gnrev_mpi: warning: out_dir %s had a stale lock of gnrev_mpi pid %ld on this host%s%s, which no "
            "longer runs: %s\n",
            out_dir, h->pid, h->since[0] ? ", since " : "", h->since, fate);
  else
    fprintf(stderr,
            "gnrev_mpi: warning: out_dir %s had a stale lock of gnrev_mpi pid %ld on host %s, left by an earlier run "
            "of this SLURM job (%s): %s\n",
            out_dir, h->pid, h->host, h->slurm_job, fate);
  fflush(stderr);
}

/* Rank 0. Moves a stale lock aside and deletes it, unless it changed since it was judged stale
 * (another run took it over in between: then that run holds the lock). */
static int take_over(const gn_lock *lk, const char *out_dir, const char *judged, const holder *h, const char *host) {
  char aside[sizeof lk->path + 32], now[TEXT_CAP];
  snprintf(aside, sizeof aside, "%s.stale.%ld", lk->path, (long)getpid());
  if (rename(lk->path, aside) != 0) {
    if (errno == ENOENT) return GN_OK; /* someone else removed it: try again */
    GN_FAIL(GN_EIO, "cannot move the stale lock file %s aside: %s", lk->path, strerror(errno));
  }
  if (read_text(aside, now) != 0 || strcmp(now, judged) != 0) {
    /* Not the file we judged: put it back unless a newer lock exists already. */
    if (link(aside, lk->path) != 0 && errno != EEXIST)
      GN_FAIL(GN_EIO, "cannot restore the lock file %s: %s", lk->path, strerror(errno));
    unlink(aside);
    return GN_OK;
  }
  unlink(aside);
  say_stale(out_dir, h, host, "taken over");
  return GN_OK;
}

static void host_name(char host[HOST_CAP]) {
  host[0] = '\0';
  if (gethostname(host, HOST_CAP - 1) != 0) snprintf(host, HOST_CAP, "unknown");
}

/* Rank 0. Judges the lock file found at lk->path: *gone when it vanished meanwhile (its holder
 * released it); otherwise its text and holder, GN_OK when that holder no longer runs (a stale lock,
 * to be taken over), or the refusal naming the holder. */
static int judge(const gn_lock *lk, const char *out_dir, const char *host, char text[TEXT_CAP], holder *h,
                 bool *gone) {
  *gone = false;
  /* A holder that has just made the file may not have written it yet. */
  for (int wait = 0; wait < 20; ++wait) {
    if (read_text(lk->path, text) != 0) {
      *gone = errno == ENOENT;
      text[0] = '\0';
    }
    parse_holder(text, h);
    if (h->pid > 0 || *gone) break;
    nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
  }
  if (*gone) return GN_OK;
  if (h->pid <= 0)
    GN_FAIL(GN_EINPUT, "out_dir %s has a lock file %s that names no holder: if no run uses this out_dir, delete it",
            out_dir, lk->path);
  /* On this host the holder's process tells; on another, only the same SLURM job id does: SLURM
   * runs a job id once at a time, so that holder was an earlier run of this requeued job. */
  const char *job = getenv("SLURM_JOB_ID");
  const bool same_job = job && *job && strcmp(h->slurm_job, job) == 0;
  if (strcmp(h->host, host) == 0 ? holder_alive(h) : !same_job) return refuse(lk, out_dir, h, host);
  return GN_OK;
}

/* Rank 0. */
static int take(gn_lock *lk, const char *out_dir) {
  char host[HOST_CAP];
  host_name(host);
  char since[64] = "";
  time_t t = time(NULL);
  struct tm tm;
  if (gmtime_r(&t, &tm)) strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
  const long pid = (long)getpid();
  const char *job = getenv("SLURM_JOB_ID");
  char job_line[96] = "";
  if (job && *job) snprintf(job_line, sizeof job_line, "slurm_job=%.63s\n", job);
  snprintf(lk->text, sizeof lk->text, "gnrev_mpi lock\nhost=%s\npid=%ld\nstart=%llu\nsince=%s\n%s", host, pid,
           process_start(pid), since, job_line);
  for (int attempt = 0; attempt < ATTEMPTS; ++attempt) {
    int fd = open(lk->path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      const int bad = write_all(fd, lk->text) != 0;
      const int e = errno;
      close(fd);
      if (bad) {
        unlink(lk->path);
        GN_FAIL(GN_EIO, "cannot write the lock file %s: %s", lk->path, strerror(e));
      }
      lk->held = true;
      return GN_OK;
    }
    if (errno != EEXIST) GN_FAIL(GN_EIO, "cannot create the lock file %s: %s", lk->path, strerror(errno));
    char text[TEXT_CAP];
    holder h;
    bool gone;
    CHECK(judge(lk, out_dir, host, text, &h, &gone));
    if (!gone) CHECK(take_over(lk, out_dir, text, &h, host));
  }
  GN_FAIL(GN_EINPUT, "out_dir %s: the lock file %s keeps changing (runs starting at once?); try again", out_dir,
          lk->path);
}

/* Rank 0. What take would meet, changing nothing: no lock file (then out_dir must let it be made),
 * a stale one (said on stderr) or the refusal. */
static int probe(const gn_lock *lk, const char *out_dir) {
  struct stat sb;
  if (stat(out_dir, &sb) != 0 && errno == ENOENT) return GN_OK; /* a run creates out_dir, then the lock */
  char host[HOST_CAP];
  host_name(host);
  if (access(lk->path, F_OK) != 0) {
    if (errno != ENOENT) GN_FAIL(GN_EIO, "cannot look at the lock file %s: %s", lk->path, strerror(errno));
    if (access(out_dir, W_OK | X_OK) != 0)
      GN_FAIL(GN_EIO, "cannot create the lock file %s: %s", lk->path, strerror(errno));
    return GN_OK;
  }
  char text[TEXT_CAP];
  holder h;
  bool gone;
  CHECK(judge(lk, out_dir, host, text, &h, &gone));
  if (!gone) say_stale(out_dir, &h, host, "a run would take it over (--check leaves it)");
  return GN_OK;
}

/* Collective. The lock of out_dir in *out: taken (dry false) or only judged (dry true, *out NULL). */
static int lock_out_dir(const gn_par *par, const char *out_dir, bool dry, gn_lock **out) {
  *out = NULL;
  gn_lock *lk = calloc(1, sizeof *lk);
  int st = lk ? GN_OK : GN_RAISE(GN_ENOMEM, "out of memory for the lock of %s", out_dir);
  if (st == GN_OK && snprintf(lk->path, sizeof lk->path, "%s/gnrev.lock", out_dir) >= (int)sizeof lk->path)
    st = GN_RAISE(GN_EINPUT, "out_dir %s is too long", out_dir);
  if (st == GN_OK && par->rank == 0) st = dry ? probe(lk, out_dir) : take(lk, out_dir);
  st = gn_par_agree(par, st);
  if (st != GN_OK || dry) {
    gn_lock_release(lk);
    return st;
  }
  *out = lk;
  return GN_OK;
}

int gn_lock_take(const gn_par *par, const char *out_dir, gn_lock **out) {
  return lock_out_dir(par, out_dir, false, out);
}

int gn_lock_probe(const gn_par *par, const char *out_dir) {
  gn_lock *none = NULL;
  return lock_out_dir(par, out_dir, true, &none);
}

void gn_lock_release(gn_lock *lk) {
  if (!lk) return;
  char text[TEXT_CAP];
  if (lk->held && read_text(lk->path, text) == 0 && strcmp(text, lk->text) == 0) unlink(lk->path);
  free(lk);
}
