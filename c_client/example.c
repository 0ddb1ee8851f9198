/* The README's C example: cc example.c $(pkg-config --cflags --libs crnnocr) -o example */
#include <stdio.h>
#include <stdlib.h>
#include <crnnocr.h>

int main(int argc, char **argv)
{
    static unsigned char image[20 << 20];
    FILE *f = argc == 2 ? fopen(argv[1], "rb") : NULL;
    size_t len = f ? fread(image, 1, sizeof image, f) : 0;
    char *text = ocr_recognize(image, len);
    if (f)
        fclose(f);
    if (!text) {
        fprintf(stderr, "ocr failed (%d): %s\n", ocr_last_error_code(), ocr_last_error());
        return EXIT_FAILURE;
    }
    printf("%s\n", text);
    ocr_free(text);
    return EXIT_SUCCESS;
}
