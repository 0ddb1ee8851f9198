/*
 * crnnocr.h - the C API of libcrnnocr: image or document bytes in, recognised text out.
 *
 * libcrnnocr runs the crnnocr engine (a DB text detector and a CRNN/CTC line
 * recogniser on ONNX Runtime or OpenVINO) inside an embedded Python interpreter
 * that the library starts itself on the first call. Callers need no Python knowledge:
 * include this header, link with `pkg-config --cflags --libs crnnocr`.
 *
 * Quick start
 *
 *     unsigned char *png = ...; size_t len = ...;
 *     char *text = ocr_recognize(png, len);
 *     if (text == NULL) {
 *         fprintf(stderr, "ocr: %s\n", ocr_last_error());
 *     } else {
 *         puts(text);
 *         ocr_free(text);
 *     }
 *
 * Conventions (they hold for every function below)
 *
 *  - Errors. Functions that can fail return an ocr_status value as int (0 = OCR_OK) or NULL,
 *    and record the failure for the calling thread: ocr_last_error_code() and
 *    ocr_last_error() then say what went wrong. A successful call resets the
 *    thread's last error to OCR_OK. No failure aborts or exits the host
 *    process, and nothing is ever printed on a normal error path.
 *  - Memory. Every pointer the library hands out is owned by the library's
 *    allocator and must be released with the matching function named in its
 *    documentation (ocr_free, ocr_result_free, ocr_engine_free); never with
 *    free(). Input buffers are only read during the call and never kept.
 *  - Documents. Input is an image (JPEG, PNG, BMP, TIFF, WebP) or a document: a
 *    PDF (each page rendered at options.dpi) or a TIFF of several frames. A
 *    document is read page by page, holding one page's pixels at a time; its
 *    result has one page per page read, and its text separates pages with a form
 *    feed ('\f'), as Tesseract does. An image is a result of one page.
 *  - Threads. All functions may be called from any thread. An engine may be
 *    used by many threads at once; a result belongs to whoever holds it.
 *    The first call that needs the engine starts Python; concurrent first calls
 *    are serialised, later ones run in parallel (the inference runtime and OpenCV
 *    release Python's interpreter lock while they compute). On OpenVINO an engine
 *    runs as many calls at once as `threads` per call fit on the cores (threads = 1:
 *    one per core; threads = 0: one at a time, each on all cores); more wait.
 *  - Process rules. Python is never shut down, so the library stays usable until
 *    the process exits. Do not use the library in a child created by fork() after
 *    the parent has started it (the child inherits a Python whose other threads
 *    are gone); exec a fresh program instead. The library leaves signal handlers
 *    and the C locale alone.
 *  - Environment. The library finds its Python runtime, the ocr_core package and
 *    the models in the directory `crnnocr/` next to the library file itself
 *    (`$libdir/crnnocr/`, laid out by `make install`). Variables override this
 *    for relocated installs, read once at the first call:
 *      CRNNOCR_HOME       directory holding ocr_core/ and models/ (a checkout works)
 *      CRNNOCR_VENV       Python virtual environment to run (default: $CRNNOCR_HOME/venv,
 *                         then $CRNNOCR_HOME/.venv)
 *      CRNNOCR_MODEL_DIR, CRNNOCR_PACK, CRNNOCR_THREADS, CRNNOCR_MAX_BYTES,
 *      CRNNOCR_MAX_PIXELS, CRNNOCR_DET_MAX_SIDE, CRNNOCR_BACKEND, CRNNOCR_TIMEOUT_S,
 *      CRNNOCR_MAX_REGIONS, CRNNOCR_MAX_PAGES
 *                         engine defaults, as for the CGI (see README)
 *    If the host process has already started a Python interpreter itself, the
 *    library joins it and adds its runtime to that interpreter's sys.path.
 *    OPENBLAS_NUM_THREADS: unless the host set it, the library sets it to 1 only
 *    while its Python modules load (numpy and OpenCV each bring an OpenBLAS, whose
 *    idle per-core threads would spin), then removes it again; the host's
 *    environment is left as it was.
 */
#ifndef CRNNOCR_H
#define CRNNOCR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header; ocr_version() tells the version of the library loaded. */
#define CRNNOCR_VERSION_MAJOR 0
#define CRNNOCR_VERSION_MINOR 1
#define CRNNOCR_VERSION_PATCH 0
#define CRNNOCR_VERSION "0.1.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons. */
#define CRNNOCR_VERSION_NUMBER 100

/*
 * Status codes. The numbers are stable and equal the `number` of the engine's
 * ErrorCode (the CGI's JSON error codes are given in brackets).
 */
typedef enum ocr_status {
    OCR_OK = 0,                       /* success */
    OCR_E_BAD_REQUEST = 1,            /* [bad_request] an argument is invalid: NULL or empty
                                         input, bad options, index out of range */
    OCR_E_METHOD_NOT_ALLOWED = 2,     /* [method_not_allowed] HTTP only; never from this library */
    OCR_E_LENGTH_REQUIRED = 3,        /* [length_required] HTTP only; never from this library */
    OCR_E_PAYLOAD_TOO_LARGE = 4,      /* [payload_too_large] input longer than max_bytes */
    OCR_E_IMAGE_TOO_LARGE = 5,        /* [image_too_large] width*height over max_pixels, found
                                         from the header before decoding (pixel bombs); for
                                         a PDF page, from its size and the dpi before rendering */
    OCR_E_UNSUPPORTED_MEDIA_TYPE = 6, /* [unsupported_media_type] not JPEG, PNG, BMP, TIFF, WebP
                                         or PDF */
    OCR_E_DECODE_FAILED = 7,          /* [decode_failed] truncated or corrupt image or PDF */
    OCR_E_MODEL_UNAVAILABLE = 8,      /* [model_unavailable] the engine cannot run: model pack
                                         missing or corrupt, or the library's Python runtime
                                         cannot be found or started; the message says what to do */
    OCR_E_TIMEOUT = 9,                /* [timeout] the call took longer than the engine's
                                         timeout_ms (default 20 s) */
    OCR_E_INTERNAL = 10,              /* [internal] a bug: please report the message */
    OCR_E_BUSY = 11,                  /* [busy] HTTP only: the server is at its limit of concurrent
                                         work (503 with Retry-After); never from this library */
    OCR_E_TOO_MANY_REGIONS = 12,      /* [too_many_regions] the page holds more text regions than
                                         the engine's limit (CRNNOCR_MAX_REGIONS, default 1000) */
    OCR_E_TOO_MANY_PAGES = 13,        /* [too_many_pages] more pages to read than max_pages (select
                                         fewer with options.pages or ocr_engine_recognize_pages) */
    OCR_E_DOCUMENT_ENCRYPTED = 14,    /* [document_encrypted] the document is password-protected */
    OCR_E_NOT_FOUND = 15,             /* [not_found] HTTP only: no such job; never from this library */
    OCR_E_JOBS_UNAVAILABLE = 16       /* [jobs_unavailable] HTTP only: an asynchronous job was asked
                                         for and no worker pool runs; never from this library */
} ocr_status;

/* What ocr_engine_recognize looks for. */
typedef enum ocr_mode {
    OCR_MODE_PAGE = 0, /* detect text lines anywhere in the image, in reading order */
    OCR_MODE_LINE = 1  /* the whole image is one text line (no detection; faster) */
} ocr_mode;

/* What ocr_result_render writes. */
typedef enum ocr_format {
    OCR_FORMAT_JSON = 0, /* the CGI's JSON document, as ocr_result_json() */
    OCR_FORMAT_TEXT = 1, /* the text as a person reads it, as ocr_result_text() */
    OCR_FORMAT_HOCR = 2, /* hOCR 1.2 (XHTML): ocr_page, ocr_carea, ocr_par, ocr_line, ocrx_word
                            with bbox and x_wconf, as Tesseract writes it */
    OCR_FORMAT_ALTO = 3, /* ALTO v4 XML: Page, TextBlock, TextLine, String (HPOS, VPOS, WIDTH,
                            HEIGHT, WC) and SP */
    OCR_FORMAT_TSV = 4   /* Tesseract's 12-column TSV: levels 1-5 (page, block, paragraph,
                            line, word), conf -1 on all levels but words */
} ocr_format;

/* ------------------------------------------------------------------------ */
/* Version, errors, memory                                                   */
/* ------------------------------------------------------------------------ */

/* The library's version, e.g. "0.1.0". Static string; never NULL; no Python needed. */
const char *ocr_version(void);

/* Code of the calling thread's last failure, OCR_OK after a success. */
int ocr_last_error_code(void);

/*
 * Message of the calling thread's last failure (UTF-8, "" after a success).
 * It says what happened and what to do, and never shows the inside (no file
 * paths, memory addresses or runtime internals), so it may be shown to end users.
 * The string belongs to the library and stays valid until the same thread's
 * next library call; copy it to keep it.
 */
const char *ocr_last_error(void);

/*
 * The operator's detail of the calling thread's last failure, "" when there is
 * none: the file or directory involved, the runtime's own words. Write it to your
 * log, not to end users. Same lifetime as ocr_last_error().
 */
const char *ocr_last_error_detail(void);

/*
 * Static English summary of a status code, e.g. "the image is damaged or cannot be
 * decoded". Never NULL (unknown codes get "unknown error code"); no Python needed.
 */
const char *ocr_strerror(int code);

/* Frees a string returned by ocr_recognize or ocr_result_render. NULL-safe. */
void ocr_free(void *p);

/* ------------------------------------------------------------------------ */
/* The one-call API                                                          */
/* ------------------------------------------------------------------------ */

/*
 * Recognises the text of one image held in memory (JPEG, PNG, BMP, TIFF or WebP)
 * or of a document (PDF, multi-page TIFF: every page, at most 50 by default).
 *
 * Returns the text as a NUL-terminated UTF-8 string, as ocr_result_text() gives
 * it (a document's pages separated by '\f'), and "" when the image has no text;
 * free it with ocr_free(). Returns NULL on
 * failure; ocr_last_error_code() / ocr_last_error() tell why. NULL `bytes`
 * or `len` 0 fail with OCR_E_BAD_REQUEST.
 *
 * Uses a process-wide default engine (page mode, options from the CRNNOCR_*
 * environment variables) created by the first call, which therefore also pays
 * for starting Python and loading the models. Its runtime is CRNNOCR_BACKEND's,
 * else "auto" (see ocr_options.backend): the first call runs on ONNX Runtime,
 * the second loads OpenVINO where auto picks it. Thread-safe.
 */
char *ocr_recognize(const unsigned char *bytes, size_t len);

/* ------------------------------------------------------------------------ */
/* The structured API: engines with options, results with lines and boxes    */
/* ------------------------------------------------------------------------ */

/* An engine: loaded models plus fixed options. Opaque; thread-safe. */
typedef struct ocr_engine ocr_engine;

/* The outcome of one recognition. Opaque; immutable; owned by the caller. */
typedef struct ocr_result ocr_result;

/*
 * Engine options. Always start from ocr_options_init(), then set what you need:
 * fields added in later versions then keep their defaults. Strings are copied
 * by ocr_engine_new and need not outlive the call.
 */
typedef struct ocr_options {
    size_t struct_size;     /* set by ocr_options_init; lets the library accept older layouts */
    const char *model_dir;  /* directory of model packs; NULL = CRNNOCR_MODEL_DIR or the
                               runtime's models/ */
    const char *pack;       /* model pack name, e.g. "ppocr-v6-small"; NULL = CRNNOCR_PACK or
                               the default pack */
    int threads;            /* inference threads per call: 0 = all cores (best for one caller),
                               1 = best when several threads call at once; -1 = CRNNOCR_THREADS
                               or 0 */
    size_t max_bytes;       /* refuse larger inputs (OCR_E_PAYLOAD_TOO_LARGE);
                               0 = CRNNOCR_MAX_BYTES or 20 MiB */
    size_t max_pixels;      /* refuse larger images (OCR_E_IMAGE_TOO_LARGE);
                               0 = CRNNOCR_MAX_PIXELS or 40 million */
    int det_max_side;       /* detector input size limit in pixels, 32..8192;
                               0 = CRNNOCR_DET_MAX_SIDE or 960 */
    /* Defaults for each ocr_engine_recognize call: */
    ocr_mode mode;          /* OCR_MODE_PAGE (default) or OCR_MODE_LINE */
    int use_cls;            /* nonzero: detect and turn upside-down lines (slower); default 0 */
    float min_score;        /* drop lines whose confidence is below this, 0..1; negative (the
                               default) = the mode's: 0.5 in page mode, where weak lines are
                               mostly spurious detections, 0 in line mode (as the CLI and CGI) */
    /* Appended later; a caller built with an older header (smaller struct_size) gets the defaults: */
    const char *backend;    /* inference runtime: "onnxruntime", "openvino" or "auto"; NULL =
                               CRNNOCR_BACKEND or "auto". On a CPU with AVX-512 BF16 or AMX,
                               "auto" reads the engine's first call on ONNX Runtime (the fastest
                               start, for programs that call once and exit) and loads OpenVINO
                               (bf16) during its second call, which costs ~250 ms more, once;
                               later pages take about half ONNX Runtime's time. Elsewhere "auto"
                               is ONNX Runtime. "openvino" pays its load at the first call */
    int timeout_ms;         /* wall-clock limit of one recognition in milliseconds, checked between
                               its stages and between batches of lines: past it the call fails
                               with OCR_E_TIMEOUT (one step already running, e.g. decoding or one
                               inference run, finishes first). 0 = no limit; -1 (the default) =
                               CRNNOCR_TIMEOUT_S in seconds, else 20000 (20 s, as the CGI's) */
    int dpi;                /* resolution PDF pages are rendered at, 30..1200; 0 = 200 */
    const char *pages;      /* pages of a document to read, e.g. "1-3,7" or "5-" (page 5 to the
                               end); NULL = all. An image is page 1 */
    int max_pages;          /* refuse a document with more pages to read than this
                               (OCR_E_TOO_MANY_PAGES); 0 = CRNNOCR_MAX_PAGES or 50 */
} ocr_options;

/* Fills *o with the defaults described above. NULL-safe. No Python needed. */
void ocr_options_init(ocr_options *o);

/*
 * Creates an engine and stores it in *out (set to NULL on failure).
 * `o` may be NULL for all defaults. Checks the options and the model pack and
 * loads the recogniser; the detector and the classifier load on the first call
 * that needs them (line mode never loads the detector). Starts Python if this
 * is the first call.
 *
 * Returns OCR_OK, OCR_E_BAD_REQUEST (NULL `out`, invalid option, options not
 * initialised by ocr_options_init) or OCR_E_MODEL_UNAVAILABLE (pack missing or
 * failing its checksums, or the Python runtime cannot start; the message says
 * the fix, ocr_last_error_detail() the path). Thread-safe.
 */
int ocr_engine_new(const ocr_options *o, ocr_engine **out);

/*
 * Releases an engine. NULL-safe. Results made by the engine stay valid.
 * The caller must make sure no other thread is still using the engine.
 */
void ocr_engine_free(ocr_engine *e);

/*
 * Recognises one image held in memory with the engine's options and stores the
 * result in *out (set to NULL on failure); release it with ocr_result_free().
 *
 * Returns OCR_OK or the reason of the failure: OCR_E_BAD_REQUEST (NULL engine,
 * `bytes` or `out`, `len` 0, a selected page past the end), OCR_E_PAYLOAD_TOO_LARGE,
 * OCR_E_IMAGE_TOO_LARGE, OCR_E_UNSUPPORTED_MEDIA_TYPE, OCR_E_DECODE_FAILED,
 * OCR_E_TOO_MANY_PAGES, OCR_E_DOCUMENT_ENCRYPTED (a PDF that needs a password),
 * OCR_E_MODEL_UNAVAILABLE, OCR_E_TIMEOUT (a document may also stop between pages),
 * OCR_E_TOO_MANY_REGIONS or OCR_E_INTERNAL; ocr_last_error() says why.
 * Finding no text is a success with 0 lines. Thread-safe: many threads may share
 * one engine (PDF pages are rendered one thread at a time; the OCR runs in parallel).
 */
int ocr_engine_recognize(ocr_engine *e, const unsigned char *bytes, size_t len, ocr_result **out);

/*
 * As ocr_engine_recognize, but with this call's own mode, use_cls and min_score
 * (the other fields of the engine's options are fixed when it is created).
 * A negative min_score means the engine's; a mode other than OCR_MODE_PAGE or
 * OCR_MODE_LINE, or a min_score above 1, fails with OCR_E_BAD_REQUEST.
 */
int ocr_engine_recognize_with(ocr_engine *e, const unsigned char *bytes, size_t len,
                              ocr_mode mode, int use_cls, float min_score, ocr_result **out);

/*
 * As ocr_engine_recognize, but reading only `pages` of a document, e.g. "1-3,7"
 * (NULL = the engine's options.pages). A malformed selection, or a page past the
 * end, fails with OCR_E_BAD_REQUEST.
 */
int ocr_engine_recognize_pages(ocr_engine *e, const unsigned char *bytes, size_t len,
                               const char *pages, ocr_result **out);

/*
 * Result accessors. They never fail on a valid result, need no Python, and the
 * strings they return live as long as the result. Lines are in reading order,
 * page after page, numbered across the whole result (see ocr_result_page_lines).
 * An index out of range gets NULL, a score of -1 or OCR_E_BAD_REQUEST; a NULL
 * result has 0 lines, NULL texts and size 0. They do not change the thread's
 * last error.
 */

/* Number of text lines found, on all pages (0 when there is no text). */
size_t ocr_result_line_count(const ocr_result *r);

/* Text of line i, UTF-8. */
const char *ocr_result_line_text(const ocr_result *r, size_t i);

/* Confidence of line i: mean character probability in 0..1. */
float ocr_result_line_score(const ocr_result *r, size_t i);

/*
 * Box of line i: four corners x0,y0 .. x3,y3 clockwise from top-left, in pixels
 * of its page as displayed (after EXIF orientation; a PDF page as rendered at
 * the dpi). Returns OCR_OK, or OCR_E_BAD_REQUEST (and leaves xy untouched) for a
 * NULL result or index.
 */
int ocr_result_line_box(const ocr_result *r, size_t i, float xy[8]);

/*
 * Words of line i: its maximal runs of non-space characters, in reading order,
 * each with its text, its confidence (mean character probability, 0..1) and its
 * box (four corners, in the corner order of the line's box), placed from where the
 * recogniser read each character. Out of range: 0 words, NULL, -1, OCR_E_BAD_REQUEST.
 */
size_t ocr_result_word_count(const ocr_result *r, size_t line);
const char *ocr_result_word_text(const ocr_result *r, size_t line, size_t word);
float ocr_result_word_score(const ocr_result *r, size_t line, size_t word);
int ocr_result_word_box(const ocr_result *r, size_t line, size_t word, float xy[8]);

/*
 * Pages read: 1 for an image, one per page read for a document (only the
 * selected ones), in document order; indices p run from 0. Out of range: 0, NULL
 * or OCR_E_BAD_REQUEST.
 */
size_t ocr_result_page_count(const ocr_result *r);

/* Nonzero when the input was a document (PDF, multi-page TIFF), 0 for an image. */
int ocr_result_is_document(const ocr_result *r);

/* Number of page p in its document, from 1 (1 for an image). */
int ocr_result_page_number(const ocr_result *r, size_t p);

/* Size of page p in pixels (a PDF page as rendered at the dpi). */
int ocr_result_page_width(const ocr_result *r, size_t p);
int ocr_result_page_height(const ocr_result *r, size_t p);

/* Text of page p, as ocr_result_text() gives a single page's. */
const char *ocr_result_page_text(const ocr_result *r, size_t p);

/*
 * The lines of page p: indices *first .. *first + *count - 1 of the line accessors.
 * Returns OCR_OK, or OCR_E_BAD_REQUEST (outputs untouched) for a NULL argument or p.
 */
int ocr_result_page_lines(const ocr_result *r, size_t p, size_t *first, size_t *count);

/*
 * The page's text as a person reads it: the lines of a row joined by a space,
 * rows by '\n', blocks (columns, cells of a grid, paragraphs) by a blank line;
 * "" when there are no lines. Lines are in reading order, a row's left to right.
 * A document's pages are separated by a form feed ('\f').
 */
const char *ocr_result_text(const ocr_result *r);

/*
 * The result as the CGI's JSON document, UTF-8. An image:
 * {"ok":true,"text":...,"lines":[{"text","score","box","block","row"}],
 *  "image":{"width","height"},"model":...,"timing_ms":{...}}
 * A document: "pages":[{"number","text","lines":[...],"image":{...}}] and
 * "document":{"format":"PDF"|"TIFF","page_count","dpi"} in place of "lines" and "image".
 */
const char *ocr_result_json(const ocr_result *r);

/*
 * Renders the result in `format` into a new NUL-terminated UTF-8 string stored in
 * *out (NULL on failure); free it with ocr_free(). Returns OCR_OK, or
 * OCR_E_BAD_REQUEST for a NULL argument or an unknown format. JSON and TEXT copy
 * ocr_result_json() and ocr_result_text(); the others run the same renderers as the
 * CGI's format= and the CLI's --format. Thread-safe; the result is only read.
 */
int ocr_result_render(const ocr_result *r, ocr_format format, char **out);

/* Size of the image, or of a document's first page read, in pixels (after EXIF orientation). */
int ocr_result_width(const ocr_result *r);
int ocr_result_height(const ocr_result *r);

/* Releases a result and all strings obtained from it. NULL-safe. */
void ocr_result_free(ocr_result *r);

#ifdef __cplusplus
}
#endif

#endif /* CRNNOCR_H */
