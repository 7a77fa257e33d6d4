/*
 * The floor of one scrape: open, read and close every stat file the exporter
 * reads (same depth, same include/exclude regexps), in one thread, timed with
 * CLOCK_MONOTONIC. Compiled at bench time with the machine's cc (bench/floor.ts).
 *
 *   floor [--depth=N] [--include=RE] [--exclude=RE] (--runs=N | --serve) DIR
 *
 * The file list is found once, before timing. A timed pass ("read") opens,
 * reads to EOF and closes each file: 4 system calls per debugfs file. A
 * "walk" pass also lists every dir it descends into, as an exporter that
 * keeps no file list between scrapes must.
 *
 * --runs=N prints one JSON line: files, bytes, and the median of N passes of
 * each kind in ms. --serve answers each line on stdin ("read" or "walk") with
 * that pass's time in ms, so that a bench can interleave passes with scrapes.
 * Regexps are POSIX extended ones; the exporter's default exclude,
 * ^mmu_rmaps_stat$, means the same in both.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static regex_t include_re, exclude_re;
static int has_include, has_exclude, depth = 2;
static char **files;
static size_t nfiles, capfiles;
static long long bytes;

static int wanted(const char *name) {
  if (has_include && regexec(&include_re, name, 0, NULL, 0) != 0) return 0;
  if (has_exclude && regexec(&exclude_re, name, 0, NULL, 0) == 0) return 0;
  return 1;
}

static int is_vcpu_dir(const char *name) {
  if (strncmp(name, "vcpu", 4) != 0 || name[4] == '\0') return 0;
  for (const char *p = name + 4; *p; p++) if (*p < '0' || *p > '9') return 0;
  return 1;
}

static int is_vm_dir(const char *name) {
  const char *p = name;
  if (*p < '0' || *p > '9') return 0;
  while (*p >= '0' && *p <= '9') p++;
  if (*p++ != '-' || *p == '\0') return 0;
  while (*p >= '0' && *p <= '9') p++;
  return *p == '\0';
}

static void add_file(const char *path) {
  if (nfiles == capfiles) {
    capfiles = capfiles ? capfiles * 2 : 1024;
    files = realloc(files, capfiles * sizeof *files);
    if (!files) { perror("realloc"); exit(1); }
  }
  files[nfiles++] = strdup(path);
}

/* Lists dir (level 0 root, 1 VM, 2 vCPU); collects files when collect is set. */
static void walk(const char *dir, int level, int collect) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[4096];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (e->d_type == DT_DIR) {
      int child = (level == 0 && is_vm_dir(e->d_name)) || (level == 1 && is_vcpu_dir(e->d_name));
      if (child && level + 1 <= depth) walk(path, level + 1, collect);
    } else if (e->d_type == DT_REG && wanted(e->d_name)) {
      if (collect) add_file(path);
    }
  }
  closedir(d);
}

static void read_all(void) {
  char buf[4096];
  long long total = 0;
  for (size_t i = 0; i < nfiles; i++) {
    int fd = open(files[i], O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
    close(fd);
  }
  bytes = total;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double pass(const char *root, int with_walk) {
  double start = now_ms();
  if (with_walk) walk(root, 0, 0);
  read_all();
  return now_ms() - start;
}

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, n, sizeof *v, compare);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void compile(regex_t *re, const char *pattern) {
  int rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    fprintf(stderr, "floor: bad regexp \"%s\"\n", pattern);
    exit(2);
  }
}

int main(int argc, char **argv) {
  int runs = 0, serve = 0;
  const char *root = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--depth=", 8) == 0) depth = atoi(a + 8);
    else if (strncmp(a, "--include=", 10) == 0) { compile(&include_re, a + 10); has_include = 1; }
    else if (strncmp(a, "--exclude=", 10) == 0) { compile(&exclude_re, a + 10); has_exclude = 1; }
    else if (strncmp(a, "--runs=", 7) == 0) runs = atoi(a + 7);
    else if (strcmp(a, "--serve") == 0) serve = 1;
    else root = a;
  }
  if (!root || (runs <= 0 && !serve)) {
    fprintf(stderr, "usage: floor [--depth=N] [--include=RE] [--exclude=RE] (--runs=N | --serve) DIR\n");
    return 2;
  }
  walk(root, 0, 1);
  if (serve) {
    char line[64];
    printf("{\"files\":%zu}\n", nfiles);
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
      printf("%.4f\n", pass(root, strncmp(line, "walk", 4) == 0));
      fflush(stdout);
    }
    return 0;
  }
  double *reads = malloc(runs * sizeof *reads), *walks = malloc(runs * sizeof *walks);
  for (int i = 0; i < runs; i++) {
    reads[i] = pass(root, 0);
    walks[i] = pass(root, 1);
  }
  printf("{\"files\":%zu,\"bytes\":%lld,\"read_ms\":%.4f,\"walk_ms\":%.4f}\n", nfiles, bytes,
         median(reads, runs), median(walks, runs));
  return 0;
}
