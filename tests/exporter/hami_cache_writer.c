/*
 * Test helper: writes HAMi-core shared-region (.cache) files the way
 * HAMi-core does (sizeof(shared_region_t) + 1 bytes), for every layout the
 * accelscope reader supports, so that padding and alignment come from the
 * compiler and not from our Python offsets.
 *
 * The struct declarations follow the field order documented in
 * docs/formats.md (HAMi-core src/multiprocess/multiprocess_memory_limit.h):
 *   v12      shared-region 1.2 (seqlock after status, sem_postinit at the end)
 *   v11      shared-region 1.1 (unused words in those places)
 *   interim  the broken "1.1" of HAMi v2.8.1 (seqlock after hostpid,
 *            sem_postinit after sem, unused[4] at the end)
 *   v0       unversioned 2024 layout
 *   preutil  pre-utilisation layout (no device_util)
 *
 * Usage:
 *   hami_cache_writer offsets LAYOUT          print sizes/offsets as JSON
 *   hami_cache_writer LAYOUT OUT [opt...]     write a file
 * Options:
 *   major=N minor=N     override the version fields (versioned layouts)
 *   flag=N              override initialized_flag
 *   devnum=N            override device_num
 *   procnum=N           override proc_num
 *   uuid0=STR           override uuids[0]
 *   oddseq=P            set slot P's seqlock to an odd value (layouts with one)
 *   smutil=P:D:X        set slot P's device_util[D].sm_util to X
 *   lkt=N               last_kernel_time (layouts with one)
 *   zero                write an all-zero file of the right size
 *
 * Default scenario (mirrored in test_hami_cache.py):
 *   device_num 2; uuids GPU-11111111-..., GPU-aaaaaaaa-...; a third uuid in
 *   slot 2 (beyond device_num); limit = {4 GiB, 8 GiB, 1 GiB}; sm_limit =
 *   {30, 0, 50}; proc_num 4; slots 0..4 filled, status {1, 0, 2, 1, 1}
 *   (slot 4 lies beyond proc_num), hostpid {1001, 1002, 1003, 0, 1005};
 *   for slot p, device d (all 16 devices):
 *     context = (p+1) MiB + d, module = 2 (p+1) MiB + d,
 *     data = 256 (p+1) MiB + d, offset = 7, total = context + module + data,
 *     monitorused = total + 4096, sm_util = 5 (p+1) + d,
 *     dec_util = 99, enc_util = 98;
 *   seqlock = 2 (p+1) (even); last_kernel_time 1760000000.
 */
#include <limits.h>
#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXDEV 16
#define MAXPROC 1024
#define MAGIC 19920718
#define MIB (1024ULL * 1024ULL)

typedef char uuid_t96[96];

/* ---- v1 (1.1, 1.2, interim) ---- */
typedef struct {
    uint64_t context_size, module_size, data_size, offset, total;
    uint64_t unused[3];
} devmem_v1;
typedef struct {
    uint64_t dec_util, enc_util, sm_util;
    uint64_t unused[3];
} devutil_v1;

typedef struct {
    int32_t pid;
    int32_t hostpid;
    devmem_v1 used[MAXDEV];
    uint64_t monitorused[MAXDEV];
    devutil_v1 device_util[MAXDEV];
    int32_t status;
    uint64_t seqlock;
    uint64_t unused[2];
} slot_v12;

typedef struct {
    int32_t initialized_flag;
    uint32_t major_version;
    uint32_t minor_version;
    int32_t sm_init_flag;
    size_t owner_pid;
    sem_t sem;
    uint64_t device_num;
    uuid_t96 uuids[MAXDEV];
    uint64_t limit[MAXDEV];
    uint64_t sm_limit[MAXDEV];
    slot_v12 procs[MAXPROC];
    int proc_num;
    int utilization_switch;
    int recent_kernel;
    int priority;
    uint64_t last_kernel_time;
    sem_t sem_postinit;
} region_v12;

typedef struct {
    int32_t pid;
    int32_t hostpid;
    devmem_v1 used[MAXDEV];
    uint64_t monitorused[MAXDEV];
    devutil_v1 device_util[MAXDEV];
    int32_t status;
    uint64_t unused[3];
} slot_v11;

typedef struct {
    int32_t initialized_flag;
    uint32_t major_version;
    uint32_t minor_version;
    int32_t sm_init_flag;
    size_t owner_pid;
    sem_t sem;
    uint64_t device_num;
    uuid_t96 uuids[MAXDEV];
    uint64_t limit[MAXDEV];
    uint64_t sm_limit[MAXDEV];
    slot_v11 procs[MAXPROC];
    int proc_num;
    int utilization_switch;
    int recent_kernel;
    int priority;
    uint64_t last_kernel_time;
    uint64_t unused[4];
} region_v11;

typedef struct {
    int32_t pid;
    int32_t hostpid;
    uint64_t seqlock;
    devmem_v1 used[MAXDEV];
    uint64_t monitorused[MAXDEV];
    devutil_v1 device_util[MAXDEV];
    int32_t status;
    uint64_t unused[2];
} slot_interim;

typedef struct {
    int32_t initialized_flag;
    uint32_t major_version;
    uint32_t minor_version;
    int32_t sm_init_flag;
    size_t owner_pid;
    sem_t sem;
    sem_t sem_postinit;
    uint64_t device_num;
    uuid_t96 uuids[MAXDEV];
    uint64_t limit[MAXDEV];
    uint64_t sm_limit[MAXDEV];
    slot_interim procs[MAXPROC];
    int proc_num;
    int utilization_switch;
    int recent_kernel;
    int priority;
    uint64_t last_kernel_time;
    uint64_t unused[4];
} region_interim;

/* ---- v0 and pre-utilisation ---- */
typedef struct {
    uint64_t context_size, module_size, data_size, offset, total;
} devmem_v0;
typedef struct {
    uint64_t dec_util, enc_util, sm_util;
} devutil_v0;

typedef struct {
    int32_t pid;
    int32_t hostpid;
    devmem_v0 used[MAXDEV];
    uint64_t monitorused[MAXDEV];
    devutil_v0 device_util[MAXDEV];
    int32_t status;
} slot_v0;

typedef struct {
    int32_t initialized_flag;
    int32_t sm_init_flag;
    size_t owner_pid;
    sem_t sem;
    uint64_t num;
    uuid_t96 uuids[MAXDEV];
    uint64_t limit[MAXDEV];
    uint64_t sm_limit[MAXDEV];
    slot_v0 procs[MAXPROC];
    int proc_num;
    int utilization_switch;
    int recent_kernel;
    int priority;
} region_v0;

typedef struct {
    int32_t pid;
    int32_t hostpid;
    devmem_v0 used[MAXDEV];
    uint64_t monitorused[MAXDEV];
    int32_t status;
} slot_pre;

typedef struct {
    int32_t initialized_flag;
    int32_t sm_init_flag;
    size_t owner_pid;
    sem_t sem;
    uint64_t num;
    uuid_t96 uuids[MAXDEV];
    uint64_t limit[MAXDEV];
    uint64_t sm_limit[MAXDEV];
    slot_pre procs[MAXPROC];
    int proc_num;
    int utilization_switch;
    int recent_kernel;
    int priority;
} region_pre;

static const char *UUIDS[3] = {
    "GPU-11111111-2222-3333-4444-555555555555",
    "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "GPU-99999999-9999-9999-9999-999999999999",
};
static const uint64_t LIMITS[3] = {4096 * MIB, 8192 * MIB, 1024 * MIB};
static const uint64_t SM_LIMITS[3] = {30, 0, 50};
static const int32_t STATUS[5] = {1, 0, 2, 1, 1};
static const int32_t HOSTPID[5] = {1001, 1002, 1003, 0, 1005};
#define NSLOTS 5

/* options */
static long opt_major = -1, opt_minor = -1, opt_flag = -1, opt_devnum = -1, opt_procnum = LONG_MIN;
static long opt_oddseq = -1, opt_lkt = -1;
static const char *opt_uuid0 = NULL;
static int opt_zero = 0;
#define MAXSM 8
static int n_sm = 0;
static long sm_p[MAXSM], sm_d[MAXSM], sm_x[MAXSM];

/* Fill the members common to every layout; S is the slot type, R the region. */
#define FILL_HEADER(r, numfield)                                                  \
    do {                                                                          \
        (r)->initialized_flag = opt_flag >= 0 ? (int32_t)opt_flag : MAGIC;        \
        (r)->sm_init_flag = 1;                                                    \
        (r)->owner_pid = 0;                                                       \
        (r)->numfield = opt_devnum >= 0 ? (uint64_t)opt_devnum : 2;              \
        for (int i = 0; i < 3; i++) {                                             \
            strncpy((r)->uuids[i], UUIDS[i], sizeof((r)->uuids[i]) - 1);          \
            (r)->limit[i] = LIMITS[i];                                            \
            (r)->sm_limit[i] = SM_LIMITS[i];                                      \
        }                                                                         \
        if (opt_uuid0) {                                                          \
            memset((r)->uuids[0], 0, sizeof((r)->uuids[0]));                      \
            strncpy((r)->uuids[0], opt_uuid0, sizeof((r)->uuids[0]) - 1);         \
        }                                                                         \
        (r)->proc_num = opt_procnum != LONG_MIN ? (int)opt_procnum : 4;          \
        (r)->utilization_switch = 1;                                              \
        (r)->recent_kernel = 2;                                                   \
        (r)->priority = 1;                                                        \
    } while (0)

#define FILL_SLOTS(r, has_util)                                                   \
    do {                                                                          \
        for (int p = 0; p < NSLOTS; p++) {                                        \
            (r)->procs[p].pid = 10 + p;                                           \
            (r)->procs[p].hostpid = HOSTPID[p];                                   \
            (r)->procs[p].status = STATUS[p];                                     \
            for (int d = 0; d < MAXDEV; d++) {                                    \
                uint64_t c = (p + 1) * MIB + d, m = 2 * (p + 1) * MIB + d;        \
                uint64_t b = 256 * (p + 1) * MIB + d;                             \
                (r)->procs[p].used[d].context_size = c;                           \
                (r)->procs[p].used[d].module_size = m;                            \
                (r)->procs[p].used[d].data_size = b;                              \
                (r)->procs[p].used[d].offset = 7;                                 \
                (r)->procs[p].used[d].total = c + m + b;                          \
                (r)->procs[p].monitorused[d] = c + m + b + 4096;                  \
                has_util((r), p, d);                                              \
            }                                                                     \
        }                                                                         \
    } while (0)

#define UTIL_YES(r, p, d)                                                         \
    do {                                                                          \
        (r)->procs[p].device_util[d].dec_util = 99;                               \
        (r)->procs[p].device_util[d].enc_util = 98;                               \
        (r)->procs[p].device_util[d].sm_util = 5 * ((p) + 1) + (d);               \
    } while (0)
#define UTIL_NO(r, p, d) do { } while (0)

#define APPLY_SMUTIL(r)                                                           \
    do {                                                                          \
        for (int i = 0; i < n_sm; i++)                                            \
            (r)->procs[sm_p[i]].device_util[sm_d[i]].sm_util = (uint64_t)sm_x[i]; \
    } while (0)

#define FILL_V1(r, major, minor)                                                  \
    do {                                                                          \
        FILL_HEADER(r, device_num);                                               \
        (r)->major_version = opt_major >= 0 ? (uint32_t)opt_major : (major);      \
        (r)->minor_version = opt_minor >= 0 ? (uint32_t)opt_minor : (minor);      \
        FILL_SLOTS(r, UTIL_YES);                                                  \
        APPLY_SMUTIL(r);                                                          \
        (r)->last_kernel_time = opt_lkt >= 0 ? (uint64_t)opt_lkt : 1760000000ULL; \
    } while (0)

#define SET_SEQ(r)                                                                \
    do {                                                                          \
        for (int p = 0; p < NSLOTS; p++) (r)->procs[p].seqlock = 2 * (p + 1);     \
        if (opt_oddseq >= 0) (r)->procs[opt_oddseq].seqlock = 7;                  \
    } while (0)

#define OFF(T, f) ((unsigned long)offsetof(T, f))

static int print_offsets(const char *layout) {
#define V1_OFFSETS(R, S, SEQ)                                                               \
    printf("{\"size\": %lu, \"device_num\": %lu, \"uuids\": %lu, \"limit\": %lu, "        \
           "\"sm_limit\": %lu, \"procs\": %lu, \"slot_size\": %lu, \"slot_hostpid\": %lu, " \
           "\"slot_used\": %lu, \"used_stride\": %lu, \"slot_util\": %lu, "                 \
           "\"util_stride\": %lu, \"sm_util\": %lu, \"slot_status\": %lu, "                 \
           "\"slot_seqlock\": %s, \"proc_num\": %lu, \"last_kernel_time\": %lu}\n",         \
           (unsigned long)sizeof(R), OFF(R, device_num), OFF(R, uuids), OFF(R, limit),      \
           OFF(R, sm_limit), OFF(R, procs), (unsigned long)sizeof(S), OFF(S, hostpid),      \
           OFF(S, used), (unsigned long)sizeof(devmem_v1), OFF(S, device_util),             \
           (unsigned long)sizeof(devutil_v1), OFF(devutil_v1, sm_util), OFF(S, status), SEQ, \
           OFF(R, proc_num), OFF(R, last_kernel_time))
    char seq[32];
    if (!strcmp(layout, "v12")) {
        snprintf(seq, sizeof seq, "%lu", OFF(slot_v12, seqlock));
        V1_OFFSETS(region_v12, slot_v12, seq);
    } else if (!strcmp(layout, "v11")) {
        V1_OFFSETS(region_v11, slot_v11, "null");
    } else if (!strcmp(layout, "interim")) {
        snprintf(seq, sizeof seq, "%lu", OFF(slot_interim, seqlock));
        V1_OFFSETS(region_interim, slot_interim, seq);
    } else if (!strcmp(layout, "v0")) {
        printf("{\"size\": %lu, \"device_num\": %lu, \"uuids\": %lu, \"limit\": %lu, "
               "\"sm_limit\": %lu, \"procs\": %lu, \"slot_size\": %lu, \"slot_hostpid\": %lu, "
               "\"slot_used\": %lu, \"used_stride\": %lu, \"slot_util\": %lu, "
               "\"util_stride\": %lu, \"sm_util\": %lu, \"slot_status\": %lu, "
               "\"slot_seqlock\": null, \"proc_num\": %lu, \"last_kernel_time\": null}\n",
               (unsigned long)sizeof(region_v0), OFF(region_v0, num), OFF(region_v0, uuids),
               OFF(region_v0, limit), OFF(region_v0, sm_limit), OFF(region_v0, procs),
               (unsigned long)sizeof(slot_v0), OFF(slot_v0, hostpid), OFF(slot_v0, used),
               (unsigned long)sizeof(devmem_v0), OFF(slot_v0, device_util),
               (unsigned long)sizeof(devutil_v0), OFF(devutil_v0, sm_util), OFF(slot_v0, status),
               OFF(region_v0, proc_num));
    } else if (!strcmp(layout, "preutil")) {
        printf("{\"size\": %lu, \"device_num\": %lu, \"uuids\": %lu, \"limit\": %lu, "
               "\"sm_limit\": %lu, \"procs\": %lu, \"slot_size\": %lu, \"slot_hostpid\": %lu, "
               "\"slot_used\": %lu, \"used_stride\": %lu, \"slot_util\": null, "
               "\"util_stride\": 0, \"sm_util\": null, \"slot_status\": %lu, "
               "\"slot_seqlock\": null, \"proc_num\": %lu, \"last_kernel_time\": null}\n",
               (unsigned long)sizeof(region_pre), OFF(region_pre, num), OFF(region_pre, uuids),
               OFF(region_pre, limit), OFF(region_pre, sm_limit), OFF(region_pre, procs),
               (unsigned long)sizeof(slot_pre), OFF(slot_pre, hostpid), OFF(slot_pre, used),
               (unsigned long)sizeof(devmem_v0), OFF(slot_pre, status), OFF(region_pre, proc_num));
    } else {
        fprintf(stderr, "unknown layout %s\n", layout);
        return 2;
    }
    return 0;
}

static int write_out(const char *out, const void *buf, size_t size) {
    /* HAMi-core: the file is sizeof(shared_region_t) + 1 bytes long. */
    FILE *f = fopen(out, "wb");
    if (!f) { perror(out); return 1; }
    if (fwrite(buf, 1, size, f) != size || fputc(0, f) == EOF) { perror(out); fclose(f); return 1; }
    return fclose(f) ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "offsets")) return print_offsets(argv[2]);
    if (argc < 3) {
        fprintf(stderr, "usage: %s LAYOUT OUT [opt...] | offsets LAYOUT\n", argv[0]);
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "major=", 6)) opt_major = atol(a + 6);
        else if (!strncmp(a, "minor=", 6)) opt_minor = atol(a + 6);
        else if (!strncmp(a, "flag=", 5)) opt_flag = atol(a + 5);
        else if (!strncmp(a, "devnum=", 7)) opt_devnum = atol(a + 7);
        else if (!strncmp(a, "procnum=", 8)) opt_procnum = atol(a + 8);
        else if (!strncmp(a, "oddseq=", 7)) opt_oddseq = atol(a + 7);
        else if (!strncmp(a, "lkt=", 4)) opt_lkt = atol(a + 4);
        else if (!strncmp(a, "uuid0=", 6)) opt_uuid0 = a + 6;
        else if (!strcmp(a, "zero")) opt_zero = 1;
        else if (!strncmp(a, "smutil=", 7) && n_sm < MAXSM &&
                 sscanf(a + 7, "%ld:%ld:%ld", &sm_p[n_sm], &sm_d[n_sm], &sm_x[n_sm]) == 3) n_sm++;
        else { fprintf(stderr, "bad option %s\n", a); return 2; }
    }
    const char *layout = argv[1], *out = argv[2];
    size_t size;
    void *buf;
    int rc;
    if (!strcmp(layout, "v12")) {
        region_v12 *r = calloc(1, size = sizeof *r);
        buf = r;
        if (!opt_zero) { FILL_V1(r, 1, 2); SET_SEQ(r); }
    } else if (!strcmp(layout, "v11")) {
        region_v11 *r = calloc(1, size = sizeof *r);
        buf = r;
        if (!opt_zero) { FILL_V1(r, 1, 1); }
    } else if (!strcmp(layout, "interim")) {
        region_interim *r = calloc(1, size = sizeof *r);
        buf = r;
        if (!opt_zero) { FILL_V1(r, 1, 1); SET_SEQ(r); }
    } else if (!strcmp(layout, "v0")) {
        region_v0 *r = calloc(1, size = sizeof *r);
        buf = r;
        if (!opt_zero) { FILL_HEADER(r, num); FILL_SLOTS(r, UTIL_YES); APPLY_SMUTIL(r); }
    } else if (!strcmp(layout, "preutil")) {
        region_pre *r = calloc(1, size = sizeof *r);
        buf = r;
        if (!opt_zero) { FILL_HEADER(r, num); FILL_SLOTS(r, UTIL_NO); }
    } else {
        fprintf(stderr, "unknown layout %s\n", layout);
        return 2;
    }
    if (!buf) { perror("calloc"); return 1; }
    rc = write_out(out, buf, size);
    free(buf);
    return rc;
}
