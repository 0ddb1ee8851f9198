/*
 * capi.c - the C side of libcrnnocr: the public API of crnnocr.h, the memory it
 * hands out, per-thread errors, and starting the embedded Python.
 *
 * Not compiled on its own: build_lib.py passes it to cffi's set_source(), which
 * appends the glue for the `extern "Python"` bridge_* functions (bridge.py) and
 * the static helpers below that Python calls. Python.h is already included.
 *
 * Everything a caller gets is malloc'd here and freed only here, so Python's
 * allocator never owns memory that C code frees, and results need no Python to
 * read or free.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crnnocr.h"

#define CRNNOCR_API __attribute__((visibility("default")))

/* ---- implemented in Python (bridge.py); each returns 1 once it has run, and reports
 * failures with bridge_set_error_detail. cffi makes them return 0 if Python failed to start. */
static int bridge_recognize(const unsigned char *bytes, size_t len, char **out_text);
static int bridge_engine_new(const ocr_options *o, uint64_t *out_id);
static int bridge_engine_free(uint64_t id);
static int bridge_engine_recognize(uint64_t id, const unsigned char *bytes, size_t len, int mode,
                                   int use_cls, float min_score, const char *pages, ocr_result **out);
static int bridge_render(const ocr_result *r, int format, char **out);

/* ---- per-thread last error ------------------------------------------------ */

#define ERROR_MESSAGE_MAX 1024

static __thread int tls_error_code;
static __thread char tls_error_message[ERROR_MESSAGE_MAX];
static __thread char tls_error_detail[ERROR_MESSAGE_MAX];

/* Copies text (NULL = "") into a thread's buffer, cut at a UTF-8 boundary if too long. */
static void set_text(char buffer[ERROR_MESSAGE_MAX], const char *text)
{
    size_t n = text ? strlen(text) : 0;
    if (n >= ERROR_MESSAGE_MAX) {
        n = ERROR_MESSAGE_MAX - 1;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(buffer, text, n);
    buffer[n] = '\0';
}

/* Records an error for the calling thread: the safe message and the operator's detail. */
static void bridge_set_error_detail(int code, const char *message, const char *detail)
{
    tls_error_code = code;
    set_text(tls_error_message, message);
    set_text(tls_error_detail, detail);
}

static void bridge_set_error(int code, const char *message)
{
    bridge_set_error_detail(code, message, NULL);
}

static void clear_error(void)
{
    tls_error_code = OCR_OK;
    tls_error_message[0] = '\0';
    tls_error_detail[0] = '\0';
}

/* ---- strings and results handed to C --------------------------------------- */

/*
 * A result is filled by bridge.py (the struct layouts are declared to cffi in build_lib.py),
 * all of it allocated here: calloc'd arrays whose counts are set as soon as they exist, so
 * that ocr_result_free can release a result that failed half-way. Boxes and scores are
 * kept as double, as Python had them, so that ocr_result_render gives the same output as
 * the Python renderers.
 */
struct ocr_word {
    char *text;
    double score;
    double box[8];
};

struct ocr_line {
    char *text;
    double score;
    double box[8];
    int block;
    int row;
    size_t word_count;
    struct ocr_word *words;
};

struct ocr_page {
    int number;
    int width;
    int height;
    size_t first_line;
    size_t line_count;
    char *text;
};

struct ocr_result {
    size_t line_count;
    struct ocr_line *lines;
    size_t page_count;
    struct ocr_page *pages;
    char *text;
    char *json;
    char *model;
    int document; /* 1 for a PDF or multi-page TIFF */
    int dpi;      /* a PDF's rendering resolution, else 0 */
};

struct ocr_engine {
    uint64_t id; /* key of the Python Engine in bridge.py's registry */
};

static char *copy_string(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* A malloc'd, NUL-terminated copy of s[0..n) for the caller or a result; NULL if out of memory. */
static char *bridge_strdup(const char *s, size_t n)
{
    return copy_string(s, n);
}

/* Zeroed memory for a result's parts; NULL if out of memory (or n is 0). */
static void *bridge_calloc(size_t n, size_t size)
{
    return n ? calloc(n, size) : NULL;
}

static void copy_box(float xy[8], const double box[8])
{
    int k;
    for (k = 0; k < 8; k++)
        xy[k] = (float)box[k];
}

/* ---- finding the runtime and starting Python ----------------------------- */

/* Directory of this library file, found at load time (before the host can chdir). */
static char library_dir[PATH_MAX];

__attribute__((constructor)) static void find_library_dir(void)
{
    Dl_info info;
    char resolved[PATH_MAX];
    if (dladdr((void *)&find_library_dir, &info) && info.dli_fname
        && realpath(info.dli_fname, resolved)) {
        char *slash = strrchr(resolved, '/');
        if (slash) {
            *slash = '\0';
            snprintf(library_dir, sizeof library_dir, "%s", resolved);
        }
    }
}

static char runtime_home[PATH_MAX]; /* holds ocr_core/ and models/ */
static char runtime_venv[PATH_MAX]; /* the Python virtual environment */
static int start_code = OCR_OK;     /* why Python could not be started, if it could not */
static const char *start_message;
static char start_detail[ERROR_MESSAGE_MAX];
static pthread_once_t start_once = PTHREAD_ONCE_INIT;

static int is_venv(const char *dir)
{
    char cfg[PATH_MAX];
    struct stat st;
    return snprintf(cfg, sizeof cfg, "%s/pyvenv.cfg", dir) < (int)sizeof cfg
           && stat(cfg, &st) == 0 && S_ISREG(st.st_mode);
}

/* `message` (static, safe for end users) and a detail for the operator's log. */
__attribute__((format(printf, 2, 3))) static void start_failed(const char *message, const char *fmt, ...)
{
    va_list args;
    start_code = OCR_E_MODEL_UNAVAILABLE;
    start_message = message;
    va_start(args, fmt);
    vsnprintf(start_detail, sizeof start_detail, fmt, args);
    va_end(args);
}

/* Resolves CRNNOCR_HOME / CRNNOCR_VENV or their defaults next to the library. */
static int locate_runtime(void)
{
    const char *home = getenv("CRNNOCR_HOME");
    const char *venv = getenv("CRNNOCR_VENV");
    int n;
    if (home && *home)
        n = snprintf(runtime_home, sizeof runtime_home, "%s", home);
    else
        n = snprintf(runtime_home, sizeof runtime_home, "%s/crnnocr", library_dir);
    if (n < 0 || n >= (int)sizeof runtime_home) {
        start_failed("libcrnnocr: the runtime path is too long; set CRNNOCR_HOME", "%s", "");
        return -1;
    }
    if (venv && *venv)
        n = snprintf(runtime_venv, sizeof runtime_venv, "%s", venv);
    else {
        n = snprintf(runtime_venv, sizeof runtime_venv, "%s/venv", runtime_home);
        if (n >= 0 && n < (int)sizeof runtime_venv && !is_venv(runtime_venv))
            n = snprintf(runtime_venv, sizeof runtime_venv, "%s/.venv", runtime_home);
    }
    if (n < 0 || n >= (int)sizeof runtime_venv) {
        start_failed("libcrnnocr: the Python environment path is too long; set CRNNOCR_VENV", "%s", "");
        return -1;
    }
    return 0;
}

/*
 * Starts Python as if it were the venv's own interpreter: with `executable` inside
 * the venv, CPython finds pyvenv.cfg and puts exactly the venv's site-packages on
 * sys.path. That matters before any of our Python runs, because cffi imports its
 * _cffi_backend first; a plain Py_Initialize would take it from the system
 * (Debian's python3-cffi-backend, if installed at all, of another version).
 * Isolated mode: the host's PYTHON* variables and user site-packages stay out.
 */
static void start_python(void)
{
    PyPreConfig preconfig;
    PyConfig config;
    PyStatus status;
    char executable[PATH_MAX];

    if (locate_runtime() != 0)
        return;
    if (Py_IsInitialized())
        return; /* the host embeds Python itself: join it; bridge.py adds our paths */
    if (!is_venv(runtime_venv)) {
        start_failed("libcrnnocr: its Python environment is missing. Run `make install` again, "
                     "or set CRNNOCR_VENV to the project's venv (CRNNOCR_HOME to a checkout with "
                     "a .venv)", "no pyvenv.cfg in %s", runtime_venv);
        return;
    }
    if (snprintf(executable, sizeof executable, "%s/bin/python3", runtime_venv)
        >= (int)sizeof executable) {
        start_failed("libcrnnocr: the Python environment path is too long; set CRNNOCR_VENV", "%s", "");
        return;
    }

    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1; /* paths and text are UTF-8 whatever the host's locale */
    status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status))
        goto failed;

    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;
    status = PyConfig_SetBytesString(&config, &config.executable, executable);
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        goto failed;
    PyEval_SaveThread(); /* release the GIL: cffi takes it per call, from any thread */
    return;

failed:
    start_failed("libcrnnocr: the embedded Python cannot start. Run `make install` again, or set "
                 "CRNNOCR_VENV to the project's venv", "Python in %s: %s", runtime_venv,
                 status.err_msg ? status.err_msg : "unknown error");
}

/*
 * Makes sure Python runs; on failure records why for this thread. Cheap after the
 * first call. cffi starts the bridge itself on the first bridge_* call, finding
 * Python already initialised.
 */
static int ensure_python(void)
{
    pthread_once(&start_once, start_python);
    if (start_code != OCR_OK) {
        bridge_set_error_detail(start_code, start_message, start_detail);
        return -1;
    }
    return 0;
}

/* Called by bridge.py to learn where the runtime is. */
static const char *bridge_runtime_home(void)
{
    return runtime_home;
}

static const char *bridge_runtime_venv(void)
{
    return runtime_venv;
}

/* A bridge_* function returned 0: cffi could not run Python code (it printed why). */
static void bridge_did_not_run(void)
{
    bridge_set_error(OCR_E_MODEL_UNAVAILABLE,
                     "libcrnnocr: the embedded Python could not load the bridge (cffi printed the "
                     "reason to stderr); check that the Python environment has cffi installed, "
                     "or set CRNNOCR_VENV");
}

/* ---- public API -------------------------------------------------------------- */

CRNNOCR_API const char *ocr_version(void)
{
    return CRNNOCR_VERSION;
}

CRNNOCR_API int ocr_last_error_code(void)
{
    return tls_error_code;
}

CRNNOCR_API const char *ocr_last_error(void)
{
    return tls_error_message;
}

CRNNOCR_API const char *ocr_last_error_detail(void)
{
    return tls_error_detail;
}

CRNNOCR_API const char *ocr_strerror(int code)
{
    /* STRERROR_TABLE is generated by build_lib.py from ocr_core.errors.ErrorCode. */
    static const char *const summaries[] = STRERROR_TABLE;
    if (code >= 0 && (size_t)code < sizeof summaries / sizeof summaries[0] && summaries[code])
        return summaries[code];
    return "unknown error code";
}

CRNNOCR_API void ocr_free(void *p)
{
    free(p);
}

CRNNOCR_API char *ocr_recognize(const unsigned char *bytes, size_t len)
{
    char *text = NULL;
    clear_error();
    if (!bytes || len == 0) {
        bridge_set_error(OCR_E_BAD_REQUEST, "no input: the image is NULL or 0 bytes long");
        return NULL;
    }
    if (ensure_python() != 0)
        return NULL;
    if (!bridge_recognize(bytes, len, &text))
        bridge_did_not_run();
    return text;
}

CRNNOCR_API void ocr_options_init(ocr_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->threads = -1;
    o->mode = OCR_MODE_PAGE;
    o->min_score = -1.0f; /* the mode's default */
    o->timeout_ms = -1;   /* CRNNOCR_TIMEOUT_S, else 20 s */
}

CRNNOCR_API int ocr_engine_new(const ocr_options *o, ocr_engine **out)
{
    ocr_options opts;
    ocr_engine *e;
    clear_error();
    if (!out) {
        bridge_set_error(OCR_E_BAD_REQUEST, "ocr_engine_new: out is NULL");
        return OCR_E_BAD_REQUEST;
    }
    *out = NULL;
    ocr_options_init(&opts);
    if (o) {
        /* An older caller's struct is a prefix of ours; the rest keeps its defaults. */
        if (o->struct_size < offsetof(ocr_options, model_dir)) {
            bridge_set_error(OCR_E_BAD_REQUEST,
                             "ocr_engine_new: options.struct_size is not set; call ocr_options_init first");
            return OCR_E_BAD_REQUEST;
        }
        memcpy(&opts, o, o->struct_size < sizeof opts ? o->struct_size : sizeof opts);
    }
    if (ensure_python() != 0)
        return tls_error_code;
    e = malloc(sizeof *e);
    if (!e) {
        bridge_set_error(OCR_E_INTERNAL, "ocr_engine_new: out of memory");
        return OCR_E_INTERNAL;
    }
    if (!bridge_engine_new(&opts, &e->id))
        bridge_did_not_run();
    if (tls_error_code != OCR_OK) {
        free(e);
        return tls_error_code;
    }
    *out = e;
    return OCR_OK;
}

CRNNOCR_API void ocr_engine_free(ocr_engine *e)
{
    if (!e)
        return;
    if (ensure_python() == 0)
        bridge_engine_free(e->id);
    free(e);
}

/* mode, use_cls and min_score < 0, pages NULL ask bridge.py for the engine's own defaults. */
static int engine_recognize(ocr_engine *e, const unsigned char *bytes, size_t len, int mode,
                            int use_cls, float min_score, const char *pages, ocr_result **out)
{
    clear_error();
    if (out)
        *out = NULL;
    if (!e || !out) {
        bridge_set_error(OCR_E_BAD_REQUEST, "ocr_engine_recognize: engine or out is NULL");
        return OCR_E_BAD_REQUEST;
    }
    if (!bytes || len == 0) {
        bridge_set_error(OCR_E_BAD_REQUEST, "no input: the image is NULL or 0 bytes long");
        return OCR_E_BAD_REQUEST;
    }
    if (ensure_python() != 0)
        return tls_error_code;
    if (!bridge_engine_recognize(e->id, bytes, len, mode, use_cls, min_score, pages, out))
        bridge_did_not_run();
    return tls_error_code;
}

CRNNOCR_API int ocr_engine_recognize(ocr_engine *e, const unsigned char *bytes, size_t len,
                                     ocr_result **out)
{
    return engine_recognize(e, bytes, len, -1, -1, -1.0f, NULL, out);
}

CRNNOCR_API int ocr_engine_recognize_pages(ocr_engine *e, const unsigned char *bytes, size_t len,
                                           const char *pages, ocr_result **out)
{
    return engine_recognize(e, bytes, len, -1, -1, -1.0f, pages, out);
}

CRNNOCR_API int ocr_engine_recognize_with(ocr_engine *e, const unsigned char *bytes, size_t len,
                                          ocr_mode mode, int use_cls, float min_score,
                                          ocr_result **out)
{
    if (mode != OCR_MODE_PAGE && mode != OCR_MODE_LINE) {
        clear_error();
        if (out)
            *out = NULL;
        bridge_set_error(OCR_E_BAD_REQUEST, "ocr_engine_recognize_with: mode must be OCR_MODE_PAGE or OCR_MODE_LINE");
        return OCR_E_BAD_REQUEST;
    }
    return engine_recognize(e, bytes, len, (int)mode, use_cls != 0, min_score, NULL, out);
}

CRNNOCR_API size_t ocr_result_line_count(const ocr_result *r)
{
    return r ? r->line_count : 0;
}

CRNNOCR_API const char *ocr_result_line_text(const ocr_result *r, size_t i)
{
    return r && i < r->line_count ? r->lines[i].text : NULL;
}

CRNNOCR_API float ocr_result_line_score(const ocr_result *r, size_t i)
{
    return r && i < r->line_count ? (float)r->lines[i].score : -1.0f;
}

CRNNOCR_API int ocr_result_line_box(const ocr_result *r, size_t i, float xy[8])
{
    if (!r || !xy || i >= r->line_count)
        return OCR_E_BAD_REQUEST;
    copy_box(xy, r->lines[i].box);
    return OCR_OK;
}

static const struct ocr_word *word_at(const ocr_result *r, size_t line, size_t word)
{
    return r && line < r->line_count && word < r->lines[line].word_count ? &r->lines[line].words[word]
                                                                         : NULL;
}

CRNNOCR_API size_t ocr_result_word_count(const ocr_result *r, size_t line)
{
    return r && line < r->line_count ? r->lines[line].word_count : 0;
}

CRNNOCR_API const char *ocr_result_word_text(const ocr_result *r, size_t line, size_t word)
{
    const struct ocr_word *w = word_at(r, line, word);
    return w ? w->text : NULL;
}

CRNNOCR_API float ocr_result_word_score(const ocr_result *r, size_t line, size_t word)
{
    const struct ocr_word *w = word_at(r, line, word);
    return w ? (float)w->score : -1.0f;
}

CRNNOCR_API int ocr_result_word_box(const ocr_result *r, size_t line, size_t word, float xy[8])
{
    const struct ocr_word *w = word_at(r, line, word);
    if (!w || !xy)
        return OCR_E_BAD_REQUEST;
    copy_box(xy, w->box);
    return OCR_OK;
}

CRNNOCR_API size_t ocr_result_page_count(const ocr_result *r)
{
    return r ? r->page_count : 0;
}

CRNNOCR_API int ocr_result_is_document(const ocr_result *r)
{
    return r ? r->document : 0;
}

CRNNOCR_API int ocr_result_page_number(const ocr_result *r, size_t p)
{
    return r && p < r->page_count ? r->pages[p].number : 0;
}

CRNNOCR_API int ocr_result_page_width(const ocr_result *r, size_t p)
{
    return r && p < r->page_count ? r->pages[p].width : 0;
}

CRNNOCR_API int ocr_result_page_height(const ocr_result *r, size_t p)
{
    return r && p < r->page_count ? r->pages[p].height : 0;
}

CRNNOCR_API const char *ocr_result_page_text(const ocr_result *r, size_t p)
{
    return r && p < r->page_count ? r->pages[p].text : NULL;
}

CRNNOCR_API int ocr_result_page_lines(const ocr_result *r, size_t p, size_t *first, size_t *count)
{
    if (!r || !first || !count || p >= r->page_count)
        return OCR_E_BAD_REQUEST;
    *first = r->pages[p].first_line;
    *count = r->pages[p].line_count;
    return OCR_OK;
}

CRNNOCR_API int ocr_result_render(const ocr_result *r, ocr_format format, char **out)
{
    const char *stored;
    clear_error();
    if (out)
        *out = NULL;
    if (!r || !out) {
        bridge_set_error(OCR_E_BAD_REQUEST, "ocr_result_render: result or out is NULL");
        return OCR_E_BAD_REQUEST;
    }
    if (format == OCR_FORMAT_JSON || format == OCR_FORMAT_TEXT) {
        stored = format == OCR_FORMAT_JSON ? r->json : r->text;
        *out = copy_string(stored, strlen(stored));
        if (!*out)
            bridge_set_error(OCR_E_INTERNAL, "ocr_result_render: out of memory");
        return tls_error_code;
    }
    if (format != OCR_FORMAT_HOCR && format != OCR_FORMAT_ALTO && format != OCR_FORMAT_TSV) {
        bridge_set_error(OCR_E_BAD_REQUEST, "ocr_result_render: unknown format");
        return OCR_E_BAD_REQUEST;
    }
    if (ensure_python() != 0)
        return tls_error_code;
    if (!bridge_render(r, (int)format, out))
        bridge_did_not_run();
    return tls_error_code;
}

CRNNOCR_API const char *ocr_result_text(const ocr_result *r)
{
    return r ? r->text : NULL;
}

CRNNOCR_API const char *ocr_result_json(const ocr_result *r)
{
    return r ? r->json : NULL;
}

CRNNOCR_API int ocr_result_width(const ocr_result *r)
{
    return ocr_result_page_width(r, 0);
}

CRNNOCR_API int ocr_result_height(const ocr_result *r)
{
    return ocr_result_page_height(r, 0);
}

CRNNOCR_API void ocr_result_free(ocr_result *r)
{
    size_t i, j;
    if (!r)
        return;
    for (i = 0; i < r->line_count && r->lines; i++) {
        for (j = 0; j < r->lines[i].word_count && r->lines[i].words; j++)
            free(r->lines[i].words[j].text);
        free(r->lines[i].words);
        free(r->lines[i].text);
    }
    for (i = 0; i < r->page_count && r->pages; i++)
        free(r->pages[i].text);
    free(r->lines);
    free(r->pages);
    free(r->text);
    free(r->json);
    free(r->model);
    free(r);
}
