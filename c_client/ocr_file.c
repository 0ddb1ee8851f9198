/*
 * ocr_file - print the text of image files and documents (PDF, TIFF), using libcrnnocr.
 *
 *   ocr_file [--json] [--format FORMAT] [--line] [--pages PAGES] [--dpi DPI] FILE...
 *
 *   --json           print the result as the CGI's JSON document, one line per file
 *   --format FORMAT  print the result as text (default), json, hocr, alto or tsv
 *   --line           treat each image as a single text line (no detection)
 *   --pages PAGES    pages of a document to read, e.g. 1-3,7 (default: all)
 *   --dpi DPI        resolution PDF pages are rendered at (default: 200)
 *
 * With several files, each text is preceded by "==> FILE <==" (as head(1) does).
 * Exit status: 0 when every image was read; otherwise the crnnocr status code
 * (1..10, see crnnocr.h) of the last image that failed, 66 if a file could not
 * be read, 64 on a usage error.
 *
 * Build: cc -std=c99 ocr_file.c $(pkg-config --cflags --libs crnnocr) -o ocr_file
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crnnocr.h"

enum { EXIT_USAGE = 64, EXIT_NOINPUT = 66 };

/* Reads a whole file into a malloc'd buffer; NULL (errno set) on failure. */
static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *data = NULL;
    size_t size = 0, cap = 0, n;
    if (!f)
        return NULL;
    do {
        if (size == cap) {
            unsigned char *grown;
            cap = cap ? cap * 2 : 65536;
            grown = realloc(data, cap);
            if (!grown) {
                free(data);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            data = grown;
        }
        n = fread(data + size, 1, cap - size, f);
        size += n;
    } while (n > 0);
    if (ferror(f)) {
        free(data);
        fclose(f);
        errno = EIO;
        return NULL;
    }
    fclose(f);
    *len = size;
    return data;
}

static void usage(FILE *out)
{
    fputs("usage: ocr_file [--json] [--format text|json|hocr|alto|tsv] [--line] [--pages PAGES]"
          " [--dpi DPI] FILE...\n", out);
}

/* The ocr_format named `name`; -1 if there is none. */
static int parse_format(const char *name)
{
    static const char *const names[] = {"json", "text", "hocr", "alto", "tsv"};
    int i;
    for (i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

int main(int argc, char **argv)
{
    int format = OCR_FORMAT_TEXT, status = 0, first_image = 1, i, code;
    ocr_options options;
    ocr_engine *engine = NULL;

    ocr_options_init(&options);
    for (; first_image < argc && argv[first_image][0] == '-'; first_image++) {
        const char *arg = argv[first_image], *value = first_image + 1 < argc ? argv[first_image + 1] : NULL;
        if (strcmp(arg, "--json") == 0)
            format = OCR_FORMAT_JSON;
        else if (strcmp(arg, "--format") == 0 && value && parse_format(value) >= 0) {
            format = parse_format(value);
            first_image++;
        } else if (strcmp(arg, "--pages") == 0 && value) {
            options.pages = value;
            first_image++;
        } else if (strcmp(arg, "--dpi") == 0 && value) {
            options.dpi = atoi(value);
            first_image++;
        } else if (strcmp(argv[first_image], "--line") == 0)
            options.mode = OCR_MODE_LINE;
        else if (strcmp(argv[first_image], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (first_image >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }

    code = ocr_engine_new(&options, &engine);
    if (code != OCR_OK) {
        /* A command-line tool's user is its operator: the detail (a path) helps fix it. */
        if (*ocr_last_error_detail())
            fprintf(stderr, "ocr_file: %s [%s]\n", ocr_last_error(), ocr_last_error_detail());
        else
            fprintf(stderr, "ocr_file: %s\n", ocr_last_error());
        return code;
    }

    for (i = first_image; i < argc; i++) {
        size_t len = 0;
        unsigned char *data = read_file(argv[i], &len);
        ocr_result *result = NULL;
        if (!data) {
            fprintf(stderr, "ocr_file: %s: %s\n", argv[i], strerror(errno));
            status = EXIT_NOINPUT;
            continue;
        }
        code = ocr_engine_recognize(engine, data, len, &result);
        free(data);
        if (code != OCR_OK) {
            fprintf(stderr, "ocr_file: %s: %s (%s)\n", argv[i], ocr_last_error(), ocr_strerror(code));
            status = code;
            continue;
        }
        if (format == OCR_FORMAT_JSON) {
            puts(ocr_result_json(result));
        } else if (format == OCR_FORMAT_TEXT) {
            if (argc - first_image > 1)
                printf("==> %s <==\n", argv[i]);
            puts(ocr_result_text(result));
        } else {
            char *rendered = NULL;
            code = ocr_result_render(result, (ocr_format)format, &rendered);
            if (code == OCR_OK)
                fputs(rendered, stdout);
            else {
                fprintf(stderr, "ocr_file: %s: %s\n", argv[i], ocr_last_error());
                status = code;
            }
            ocr_free(rendered);
        }
        ocr_result_free(result);
    }
    ocr_engine_free(engine);
    return status;
}
