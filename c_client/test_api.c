/*
 * test_api - drives every corner of crnnocr.h for tests/test_c_lib.py; also the C-only
 * header test (it is built with -std=c99 -Wall -Wextra -Werror -pedantic).
 *
 *   test_api static                  version, ocr_strerror table, options defaults; no Python
 *   test_api inputs GOOD FILE...     ocr_recognize on NULL, 0 bytes and each FILE, each followed
 *                                    by a call on GOOD that must work again
 *   test_api engine GOOD [MODEL_DIR] engine options that must fail, then a result read in full
 *   test_api maps GOOD [CALLS]       CALLS calls (default 1), then the _cffi_backend and libpython
 *                                    files mapped,
 *                                    the inference runtime's libraries mapped ("runtime" records),
 *                                    and OPENBLAS_NUM_THREADS as the host's environment has it now
 *   test_api backends GOOD           a line-mode engine per backend option, and ones whose struct
 *                                    has the layout of a caller built before `backend` or
 *                                    `timeout_ms` existed
 *   test_api limits PAGE LINE        PAGE with timeout_ms 1 and 0 (no limit), then LINE in line
 *                                    mode with the default min_score
 *   test_api document FILE [PAGES]   one result read through every page, line and word accessor,
 *                                    then rendered in every format (each to FILE.<format>)
 *
 * Output is one tab-separated record per line (see each command), for the test to parse.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crnnocr.h"

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *data = NULL;
    long size;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        data = malloc((size_t)size + 1);
        if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
            free(data);
            data = NULL;
        }
        *len = (size_t)size;
    }
    fclose(f);
    if (!data) {
        fprintf(stderr, "test_api: cannot read %s\n", path);
        exit(2);
    }
    return data;
}

/* "call\tNAME\tCODE\tMESSAGE\tTEXT" for one ocr_recognize call. */
static int report_recognize(const char *name, const unsigned char *bytes, size_t len)
{
    char *text = ocr_recognize(bytes, len);
    int code = ocr_last_error_code();
    printf("call\t%s\t%d\t%s\t%s\n", name, code, ocr_last_error(), text ? text : "(null)");
    if ((text == NULL) != (code != OCR_OK))
        printf("inconsistent\t%s\n", name);
    ocr_free(text);
    return code;
}

static int cmd_static(void)
{
    ocr_options o;
    int code;
    printf("version\t%s\t%s\t%d\n", ocr_version(), CRNNOCR_VERSION, CRNNOCR_VERSION_NUMBER);
    for (code = -1; code <= 99; code++) /* every code there is, and then some */
        printf("strerror\t%d\t%s\n", code, ocr_strerror(code));
    ocr_options_init(&o);
    printf("options\t%d\t%d\t%d\t%.2f\t%d\t%d\n", o.struct_size == sizeof o, o.threads, (int)o.mode,
           (double)o.min_score,
           o.model_dir == NULL && o.pack == NULL && o.max_bytes == 0 && o.backend == NULL,
           o.timeout_ms);
    ocr_options_init(NULL);
    ocr_free(NULL);
    ocr_result_free(NULL);
    ocr_engine_free(NULL);
    printf("null-safe\t%d\t%d\n", (int)ocr_result_line_count(NULL), ocr_result_text(NULL) == NULL);
    return 0;
}

static int cmd_inputs(int argc, char **argv)
{
    size_t good_len, len;
    unsigned char *good = read_file(argv[2], &good_len);
    int i;
    report_recognize("null", NULL, 10);
    report_recognize("good", good, good_len);
    report_recognize("empty", good, 0);
    report_recognize("good", good, good_len);
    for (i = 3; i < argc; i++) {
        unsigned char *data = read_file(argv[i], &len);
        report_recognize(argv[i], data, len);
        free(data);
        report_recognize("good", good, good_len);
    }
    free(good);
    return 0;
}

/* "engine\tNAME\tCODE\tMESSAGE" for one ocr_engine_new. */
static ocr_engine *report_engine(const char *name, const ocr_options *o)
{
    ocr_engine *e = (ocr_engine *)1; /* must be reset to NULL on failure */
    int code = ocr_engine_new(o, &e);
    printf("engine\t%s\t%d\t%s\t%s\n", name, code, ocr_last_error(), ocr_last_error_detail());
    if ((code == OCR_OK) != (e != NULL))
        printf("inconsistent\t%s\n", name);
    return code == OCR_OK ? e : NULL;
}

static int cmd_engine(int argc, char **argv)
{
    size_t len, i;
    unsigned char *good = read_file(argv[2], &len);
    ocr_options o;
    ocr_engine *e;
    ocr_result *r = (ocr_result *)1;
    float box[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    int code;

    ocr_options_init(&o);
    o.model_dir = argc > 3 ? argv[3] : "/nonexistent/crnnocr-models";
    report_engine("missing_model_dir", &o);
    ocr_options_init(&o);
    o.pack = "no-such-pack";
    report_engine("unknown_pack", &o);
    ocr_options_init(&o);
    o.threads = -5;
    report_engine("bad_threads", &o);
    ocr_options_init(&o);
    o.min_score = 2.0f;
    report_engine("bad_min_score", &o);
    ocr_options_init(&o);
    o.backend = "tensorflow";
    report_engine("bad_backend", &o);
    ocr_options_init(&o);
    o.timeout_ms = -7;
    report_engine("bad_timeout", &o);
    ocr_options_init(&o);
    o.struct_size = 0;
    report_engine("uninitialised_options", &o);
    code = ocr_engine_new(NULL, NULL);
    printf("engine\tnull_out\t%d\t%s\t%s\n", code, ocr_last_error(), ocr_last_error_detail());

    e = report_engine("defaults", NULL);
    if (!e)
        return 1;
    code = ocr_engine_recognize(e, NULL, 1, &r);
    printf("recognize\tnull_bytes\t%d\t%d\n", code, r == NULL);
    code = ocr_engine_recognize(NULL, good, len, &r);
    printf("recognize\tnull_engine\t%d\t%d\n", code, r == NULL);
    code = ocr_engine_recognize_with(e, good, len, (ocr_mode)7, 0, 0.5f, &r);
    printf("recognize\tbad_mode\t%d\t%d\n", code, r == NULL);
    code = ocr_engine_recognize_with(e, good, len, OCR_MODE_LINE, 0, 1.5f, &r);
    printf("recognize\tbad_min_score\t%d\t%s\n", code, ocr_last_error());

    code = ocr_engine_recognize(e, good, len, &r);
    printf("recognize\tpage\t%d\t%s\n", code, ocr_last_error());
    if (code != OCR_OK)
        return 1;
    printf("result\t%d\t%d\t%d\n", (int)ocr_result_line_count(r), ocr_result_width(r), ocr_result_height(r));
    for (i = 0; i < ocr_result_line_count(r); i++) {
        code = ocr_result_line_box(r, i, box);
        printf("line\t%d\t%.4f\t%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f\t%s\n", code,
               (double)ocr_result_line_score(r, i), (double)box[0], (double)box[1], (double)box[2],
               (double)box[3], (double)box[4], (double)box[5], (double)box[6], (double)box[7],
               ocr_result_line_text(r, i));
    }
    i = ocr_result_line_count(r);
    printf("out_of_range\t%d\t%.1f\t%d\n", ocr_result_line_text(r, i) == NULL,
           (double)ocr_result_line_score(r, i), ocr_result_line_box(r, i, box));
    printf("text\t%s\n", ocr_result_text(r));
    printf("json\t%s\n", ocr_result_json(r));
    ocr_result_free(r);

    code = ocr_engine_recognize_with(e, good, len, OCR_MODE_LINE, 0, 0.0f, &r);
    printf("recognize\tline\t%d\t%s\n", code, code == OCR_OK ? ocr_result_text(r) : ocr_last_error());
    ocr_result_free(r);
    ocr_engine_free(e);
    free(good);
    return 0;
}

static int cmd_maps(char **argv)
{
    size_t len;
    unsigned char *good = read_file(argv[2], &len);
    char line[4096];
    const char *value;
    FILE *maps;
    int calls = argv[3] ? atoi(argv[3]) : 1;
    while (calls-- > 0)
        report_recognize("good", good, len);
    free(good);
    maps = fopen("/proc/self/maps", "r");
    if (!maps)
        return 1;
    while (fgets(line, sizeof line, maps)) {
        char *path = strchr(line, '/');
        if (path && (strstr(path, "_cffi_backend") || strstr(path, "libpython")))
            printf("mapped\t%s", path);
        if (path && (strstr(path, "libopenvino.so") || strstr(path, "onnxruntime_pybind11")))
            printf("runtime\t%s", path);
    }
    fclose(maps);
    value = getenv("OPENBLAS_NUM_THREADS");
    printf("env\tOPENBLAS_NUM_THREADS\t%s\n", value ? value : "(unset)");
    return 0;
}

/* "backend\tNAME\tCODE\tTEXT" for a line-mode engine with options.backend = NAME ("null" = NULL). */
static void report_backend(const char *name, const char *backend, size_t struct_size,
                           const unsigned char *good, size_t len)
{
    ocr_options o;
    ocr_engine *e = NULL;
    ocr_result *r = NULL;
    int code;
    ocr_options_init(&o);
    o.backend = backend;
    o.mode = OCR_MODE_LINE;
    o.threads = 1;
    o.struct_size = struct_size;
    if (struct_size <= offsetof(ocr_options, timeout_ms))
        o.timeout_ms = -7; /* stale bytes past an older caller's struct: a bad option if read */
    code = ocr_engine_new(&o, &e);
    if (code == OCR_OK)
        code = ocr_engine_recognize(e, good, len, &r);
    printf("backend\t%s\t%d\t%s\n", name, code, code == OCR_OK ? ocr_result_text(r) : ocr_last_error());
    ocr_result_free(r);
    ocr_engine_free(e);
}

static int cmd_backends(char **argv)
{
    size_t len;
    unsigned char *good = read_file(argv[2], &len);
    report_backend("onnxruntime", "onnxruntime", sizeof(ocr_options), good, len);
    report_backend("openvino", "openvino", sizeof(ocr_options), good, len);
    report_backend("auto", "auto", sizeof(ocr_options), good, len);
    report_backend("null", NULL, sizeof(ocr_options), good, len);
    /* A caller built before the field existed: the library must not read past its struct. */
    report_backend("old_layout", "tensorflow", offsetof(ocr_options, backend), good, len);
    report_backend("old_layout_timeout", "onnxruntime", offsetof(ocr_options, timeout_ms), good, len);
    free(good);
    return 0;
}

/* "page\tP\tNUMBER\tWIDTH\tHEIGHT\tFIRST\tCOUNT", "word\tLINE\tTEXT\tSCORE\tXY", "render\tFORMAT\tCODE\tBYTES". */
static int cmd_document(int argc, char **argv)
{
    static const char *const names[] = {"json", "text", "hocr", "alto", "tsv"};
    size_t len, p, i, j, first = 0, count = 0;
    unsigned char *data = read_file(argv[2], &len);
    ocr_engine *e = NULL;
    ocr_result *r = NULL;
    float box[8];
    char path[4096], *out = (char *)1;
    int code, f;

    code = ocr_engine_new(NULL, &e);
    if (code == OCR_OK)
        code = ocr_engine_recognize_pages(e, data, len, argc > 3 ? argv[3] : NULL, &r);
    free(data);
    printf("recognize\t%d\t%s\n", code, ocr_last_error());
    if (code != OCR_OK) {
        ocr_engine_free(e);
        return 0;
    }
    printf("document\t%d\t%d\t%d\n", ocr_result_is_document(r), (int)ocr_result_page_count(r),
           (int)ocr_result_line_count(r));
    for (p = 0; p < ocr_result_page_count(r); p++) {
        code = ocr_result_page_lines(r, p, &first, &count);
        printf("page\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", (int)p, ocr_result_page_number(r, p),
               ocr_result_page_width(r, p), ocr_result_page_height(r, p), (int)first, (int)count, code);
        printf("page_text\t%d\t%s\n", (int)p, ocr_result_page_text(r, p));
    }
    printf("page_out_of_range\t%d\t%d\t%d\n", ocr_result_page_number(r, p), ocr_result_page_text(r, p) == NULL,
           ocr_result_page_lines(r, p, &first, &count));
    for (i = 0; i < ocr_result_line_count(r); i++) {
        for (j = 0; j < ocr_result_word_count(r, i); j++) {
            code = ocr_result_word_box(r, i, j, box);
            printf("word\t%d\t%s\t%.4f\t%d\t%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f\n", (int)i,
                   ocr_result_word_text(r, i, j), (double)ocr_result_word_score(r, i, j), code, (double)box[0],
                   (double)box[1], (double)box[2], (double)box[3], (double)box[4], (double)box[5],
                   (double)box[6], (double)box[7]);
        }
        printf("word_out_of_range\t%d\t%d\t%.1f\t%d\n", (int)i, ocr_result_word_text(r, i, j) == NULL,
               (double)ocr_result_word_score(r, i, j), ocr_result_word_box(r, i, j, box));
    }
    for (f = 0; f < 5; f++) {
        FILE *file;
        code = ocr_result_render(r, (ocr_format)f, &out);
        printf("render\t%s\t%d\t%d\n", names[f], code, out ? (int)strlen(out) : -1);
        snprintf(path, sizeof path, "%s.%s", argv[2], names[f]);
        if (out && (file = fopen(path, "wb")) != NULL) {
            fputs(out, file);
            fclose(file);
        }
        ocr_free(out);
    }
    code = ocr_result_render(r, (ocr_format)9, &out);
    printf("render\tunknown\t%d\t%d\n", code, out == NULL);
    code = ocr_result_render(NULL, OCR_FORMAT_TSV, &out);
    printf("render\tnull\t%d\t%d\n", code, out == NULL);
    ocr_result_free(r);
    ocr_engine_free(e);
    return 0;
}

/* "limit\tNAME\tCODE\tMESSAGE_OR_LINE_COUNT\tMILLISECONDS" for one recognition. */
static void report_limit(const char *name, const ocr_options *o, ocr_mode mode, const unsigned char *data,
                         size_t len)
{
    ocr_engine *e = NULL;
    ocr_result *r = NULL;
    struct timespec t0, t1;
    int code = ocr_engine_new(o, &e);
    char lines[32];
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (code == OCR_OK)
        code = ocr_engine_recognize_with(e, data, len, mode, -1, -1.0f, &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    snprintf(lines, sizeof lines, "%d", (int)ocr_result_line_count(r));
    printf("limit\t%s\t%d\t%s\t%.0f\n", name, code, code == OCR_OK ? lines : ocr_last_error(),
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    ocr_result_free(r);
    ocr_engine_free(e);
}

static int cmd_limits(char **argv)
{
    size_t page_len, line_len;
    unsigned char *page = read_file(argv[2], &page_len);
    unsigned char *line = read_file(argv[3], &line_len);
    ocr_options o;
    ocr_options_init(&o);
    o.backend = "onnxruntime";
    o.timeout_ms = 1;
    report_limit("timeout_1ms", &o, OCR_MODE_PAGE, page, page_len);
    o.timeout_ms = 0;
    report_limit("no_timeout", &o, OCR_MODE_PAGE, page, page_len);
    ocr_options_init(&o);
    o.backend = "onnxruntime";
    o.mode = OCR_MODE_LINE;
    report_limit("default_score_line", &o, OCR_MODE_LINE, line, line_len);
    free(page);
    free(line);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "static") == 0)
        return cmd_static();
    if (argc >= 3 && strcmp(argv[1], "inputs") == 0)
        return cmd_inputs(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "engine") == 0)
        return cmd_engine(argc, argv);
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "maps") == 0)
        return cmd_maps(argv);
    if (argc == 3 && strcmp(argv[1], "backends") == 0)
        return cmd_backends(argv);
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "document") == 0)
        return cmd_document(argc, argv);
    if (argc == 4 && strcmp(argv[1], "limits") == 0)
        return cmd_limits(argv);
    fputs("usage: test_api static | inputs GOOD FILE... | engine GOOD [MODEL_DIR] | maps GOOD"
          " | backends GOOD | document FILE [PAGES] | limits PAGE LINE\n", stderr);
    return 2;
}
