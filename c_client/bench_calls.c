/*
 * bench_calls - time libcrnnocr from C: first call, per-call latency, threads, memory.
 *
 *   bench_calls [--api engine|simple] [--mode page|line] [--threads N] [--calls N]
 *               [--warmup N] [--ort-threads N] [--expect FILE] [--rss-every N] IMAGE
 *
 *   --api engine   ocr_engine_new + ocr_engine_recognize (default)
 *   --api simple   ocr_recognize (always page mode; --ort-threads sets CRNNOCR_THREADS)
 *   --mode         page (default) or line
 *   --threads N    N threads call at once on one engine (default 1)
 *   --calls N      measured calls per thread (default 20)
 *   --warmup N     unmeasured calls per thread before them (default 1; 0 makes the
 *                  threads' first calls, which start Python, happen at once)
 *   --ort-threads  ONNX Runtime threads per call (engine option `threads`; default:
 *                  the library's default, all cores)
 *   --expect FILE  compare every result's text with FILE's content (a trailing
 *                  newline is ignored); mismatches are counted
 *   --rss-every N  the first thread samples resident memory after every N of its
 *                  measured calls (default 0: no samples), for long leak runs
 *
 * Prints one JSON object on stdout:
 *   first_call_ms      from before the first library call to the first text in hand
 *                      (starting Python, imports, model load, one recognition)
 *   engine_new_ms      the ocr_engine_new part of it (engine API only)
 *   per_call_ms        {mean, p50, p90, min, max} over all measured calls
 *   wall_s, calls_per_s  wall time of the measured phase and calls/s over all threads
 *   rss_kb_before, rss_kb_after  resident memory before and after the measured phase
 *   rss_kb_samples     with --rss-every: [resident memory after N, 2N, ... calls]
 *   errors, mismatches failed calls and wrong texts
 * Exit status 0 when there were no errors and no mismatches, 1 otherwise, 2 on usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crnnocr.h"

struct bench {
    int simple;
    ocr_mode mode;
    int calls, warmup;
    int rss_every;           /* 0: no samples */
    long *rss_samples;       /* calls / rss_every entries, written by the first thread */
    ocr_engine *engine;
    const unsigned char *image;
    size_t image_len;
    const char *expect;      /* NULL: do not check */
    pthread_barrier_t start; /* all threads begin the measured phase together */
    pthread_barrier_t warm;
};

struct worker {
    struct bench *b;
    int first;          /* the thread that samples RSS */
    pthread_t thread;
    double *latency_ms; /* calls entries */
    int errors, mismatches;
    double first_ms;    /* this thread's first call, when not warmed up */
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *data;
    long size;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    data = malloc((size_t)size + 1);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
        free(data);
        data = NULL;
    }
    fclose(f);
    if (data) {
        data[size] = '\0';
        *len = (size_t)size;
    }
    return data;
}

/* One call; 0 on success. Checks the text against b->expect. */
static int one_call(struct worker *w)
{
    struct bench *b = w->b;
    const char *text;
    char *owned = NULL;
    ocr_result *result = NULL;
    int ok;
    if (b->simple) {
        owned = ocr_recognize(b->image, b->image_len);
        text = owned;
    } else {
        ocr_engine_recognize_with(b->engine, b->image, b->image_len, b->mode, 0, 0.5f, &result);
        text = result ? ocr_result_text(result) : NULL;
    }
    if (!text) {
        if (w->errors++ == 0)
            fprintf(stderr, "bench_calls: %s\n", ocr_last_error());
        return -1;
    }
    ok = !b->expect || strcmp(text, b->expect) == 0;
    if (!ok && w->mismatches++ == 0)
        fprintf(stderr, "bench_calls: got %s\n", text);
    ocr_free(owned);
    ocr_result_free(result);
    return ok ? 0 : -1;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    int i;
    for (i = 0; i < w->b->warmup; i++) {
        double t = now_ms();
        one_call(w);
        if (i == 0)
            w->first_ms = now_ms() - t;
    }
    pthread_barrier_wait(&w->b->warm);
    pthread_barrier_wait(&w->b->start);
    for (i = 0; i < w->b->calls; i++) {
        double t = now_ms();
        one_call(w);
        w->latency_ms[i] = now_ms() - t;
        if (w->first && w->b->rss_every && (i + 1) % w->b->rss_every == 0)
            w->b->rss_samples[i / w->b->rss_every] = rss_kb();
    }
    return NULL;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void)
{
    fputs("usage: bench_calls [--api engine|simple] [--mode page|line] [--threads N] [--calls N]\n"
          "                   [--warmup N] [--ort-threads N] [--expect FILE] [--rss-every N] IMAGE\n",
          stderr);
}

int main(int argc, char **argv)
{
    struct bench b;
    struct worker *workers;
    ocr_options options;
    int threads = 1, ort_threads = -1, i, n, errors = 0, mismatches = 0;
    double *all, t0, first_ms = 0, engine_new_ms = 0, wall_start, wall_s, sum = 0;
    long rss_before, rss_after;
    const char *expect_path = NULL;
    char *expect = NULL;

    memset(&b, 0, sizeof b);
    b.mode = OCR_MODE_PAGE;
    b.calls = 20;
    b.warmup = 1;
    for (i = 1; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        const char *opt = argv[i], *val = argv[i + 1];
        if (strcmp(opt, "--api") == 0 && (strcmp(val, "engine") == 0 || strcmp(val, "simple") == 0))
            b.simple = strcmp(val, "simple") == 0;
        else if (strcmp(opt, "--mode") == 0 && (strcmp(val, "page") == 0 || strcmp(val, "line") == 0))
            b.mode = strcmp(val, "line") == 0 ? OCR_MODE_LINE : OCR_MODE_PAGE;
        else if (strcmp(opt, "--threads") == 0 && (threads = atoi(val)) > 0)
            continue;
        else if (strcmp(opt, "--calls") == 0 && (b.calls = atoi(val)) >= 0)
            continue;
        else if (strcmp(opt, "--warmup") == 0 && (b.warmup = atoi(val)) >= 0)
            continue;
        else if (strcmp(opt, "--ort-threads") == 0 && (ort_threads = atoi(val)) >= 0)
            continue;
        else if (strcmp(opt, "--expect") == 0)
            expect_path = val;
        else if (strcmp(opt, "--rss-every") == 0 && (b.rss_every = atoi(val)) >= 0)
            continue;
        else {
            usage();
            return 2;
        }
    }
    if (i != argc - 1 || (b.simple && b.mode == OCR_MODE_LINE)) {
        usage();
        return 2;
    }
    b.image = read_file(argv[i], &b.image_len);
    if (!b.image) {
        fprintf(stderr, "bench_calls: cannot read %s\n", argv[i]);
        return 2;
    }
    if (expect_path) {
        size_t len;
        expect = (char *)read_file(expect_path, &len);
        if (!expect) {
            fprintf(stderr, "bench_calls: cannot read %s\n", expect_path);
            return 2;
        }
        if (len && expect[len - 1] == '\n')
            expect[len - 1] = '\0';
        b.expect = expect;
    }

    workers = calloc((size_t)threads, sizeof *workers);
    all = malloc(((size_t)threads * (size_t)b.calls + 1) * sizeof *all);
    if (b.rss_every)
        b.rss_samples = calloc((size_t)(b.calls / b.rss_every) + 1, sizeof *b.rss_samples);
    if (!workers || !all || (b.rss_every && !b.rss_samples))
        return 2;
    pthread_barrier_init(&b.warm, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&b.start, NULL, (unsigned)threads + 1);

    t0 = now_ms();
    if (b.simple) {
        if (ort_threads >= 0) {
            char value[16];
            snprintf(value, sizeof value, "%d", ort_threads);
            setenv("CRNNOCR_THREADS", value, 1);
        }
    } else {
        ocr_options_init(&options);
        options.threads = ort_threads;
        options.mode = b.mode;
        if (ocr_engine_new(&options, &b.engine) != OCR_OK) {
            fprintf(stderr, "bench_calls: %s\n", ocr_last_error());
            return 1;
        }
        engine_new_ms = now_ms() - t0;
    }
    for (i = 0; i < threads; i++) {
        workers[i].b = &b;
        workers[i].first = i == 0;
        workers[i].latency_ms = all + (size_t)i * (size_t)b.calls;
        pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]);
    }
    pthread_barrier_wait(&b.warm);
    for (i = 0; i < threads; i++)
        if (workers[i].first_ms > first_ms)
            first_ms = workers[i].first_ms; /* the slowest thread's first call */
    first_ms += engine_new_ms;
    rss_before = rss_kb();
    wall_start = now_ms();
    pthread_barrier_wait(&b.start);
    for (i = 0; i < threads; i++)
        pthread_join(workers[i].thread, NULL);
    wall_s = (now_ms() - wall_start) / 1e3;
    rss_after = rss_kb();

    n = threads * b.calls;
    for (i = 0; i < threads; i++) {
        errors += workers[i].errors;
        mismatches += workers[i].mismatches;
    }
    for (i = 0; i < n; i++)
        sum += all[i];
    qsort(all, (size_t)n, sizeof *all, compare_double);
    printf("{\"api\": \"%s\", \"mode\": \"%s\", \"threads\": %d, \"ort_threads\": %d, "
           "\"calls_per_thread\": %d, \"warmup\": %d, ",
           b.simple ? "simple" : "engine", b.mode == OCR_MODE_LINE ? "line" : "page", threads,
           ort_threads, b.calls, b.warmup);
    if (b.warmup > 0)
        printf("\"first_call_ms\": %.2f, ", first_ms);
    if (!b.simple)
        printf("\"engine_new_ms\": %.2f, ", engine_new_ms);
    if (n > 0)
        printf("\"per_call_ms\": {\"mean\": %.3f, \"p50\": %.3f, \"p90\": %.3f, \"min\": %.3f, "
               "\"max\": %.3f}, ",
               sum / n, all[n / 2], all[(n * 9) / 10], all[0], all[n - 1]);
    if (b.rss_every) {
        printf("\"rss_kb_samples\": [");
        for (i = 0; i < b.calls / b.rss_every; i++)
            printf(i ? ", %ld" : "%ld", b.rss_samples[i]);
        printf("], ");
    }
    printf("\"wall_s\": %.3f, \"calls_per_s\": %.3f, \"rss_kb_before\": %ld, \"rss_kb_after\": %ld, "
           "\"errors\": %d, \"mismatches\": %d}\n",
           wall_s, wall_s > 0 ? n / wall_s : 0.0, rss_before, rss_after, errors, mismatches);

    ocr_engine_free(b.engine);
    pthread_barrier_destroy(&b.warm);
    pthread_barrier_destroy(&b.start);
    free(all);
    free(b.rss_samples);
    free(workers);
    free(expect);
    free((void *)b.image);
    return errors || mismatches ? 1 : 0;
}
