/*
 * ocr_post - send an image to the crnnocr CGI and print the answer; plain POSIX sockets, libc only.
 *
 *   ocr_post [--multipart] [--type MIME] [--connect-timeout S] [--timeout S] URL IMAGE
 *
 *   URL                 http://HOST[:PORT]/PATH[?QUERY], e.g.
 *                       http://127.0.0.1:8080/cgi-bin/ocr.cgi?format=text
 *   --multipart         send a multipart/form-data form with the file in field "image"
 *                       (default: the file itself as the request body)
 *   --type MIME         Content-Type of the image (default application/octet-stream)
 *   --connect-timeout S seconds to wait for the connection (default 5)
 *   --timeout S         seconds to wait for each send or receive (default 60)
 *
 * Prints the response body to stdout, unchanged. Exit status (as curl's, for scripts
 * that know those): 0 success, 2 usage, 7 cannot connect, 8 malformed response,
 * 22 HTTP status 400 or above (the body is still printed), 26 cannot read IMAGE,
 * 28 timeout, 55 send or receive failed.
 *
 * The request is HTTP/1.0 with Connection: close, so the response is the bytes up to
 * the end of the connection: no chunked decoding is needed.
 *
 * Build: cc -std=c99 -Wall -Wextra -Werror -pedantic ocr_post.c -o ocr_post
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum {
    EXIT_USAGE = 2,
    EXIT_CONNECT = 7,
    EXIT_BAD_RESPONSE = 8,
    EXIT_HTTP_ERROR = 22,
    EXIT_READ_FILE = 26,
    EXIT_TIMEOUT = 28,
    EXIT_NETWORK = 55
};

#define MAX_RESPONSE (64L * 1024 * 1024)

struct url {
    char host[256];
    char port[8];
    char path[2048]; /* path and query, starting with '/' */
};

static const char *program = "ocr_post";

static void usage(FILE *out)
{
    fputs("usage: ocr_post [--multipart] [--type MIME] [--connect-timeout S] [--timeout S] URL IMAGE\n",
          out);
}

/* Splits http://HOST[:PORT][/PATH]; 0 on success. IPv6 literals are written [::1]. */
static int parse_url(const char *text, struct url *u)
{
    const char *p = text, *host_end, *path;
    size_t host_len;
    if (strncmp(p, "http://", 7) != 0)
        return -1;
    p += 7;
    path = strchr(p, '/');
    if (!path)
        path = p + strlen(p);
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(path - p));
        if (!host_end)
            return -1;
        p++;
        host_len = (size_t)(host_end - p);
        host_end++;
    } else {
        host_end = memchr(p, ':', (size_t)(path - p));
        if (!host_end)
            host_end = path;
        host_len = (size_t)(host_end - p);
    }
    if (host_len == 0 || host_len >= sizeof u->host)
        return -1;
    memcpy(u->host, p, host_len);
    u->host[host_len] = '\0';
    if (*host_end == ':') {
        size_t port_len = (size_t)(path - host_end - 1);
        if (port_len == 0 || port_len >= sizeof u->port)
            return -1;
        memcpy(u->port, host_end + 1, port_len);
        u->port[port_len] = '\0';
    } else if (host_end == path) {
        strcpy(u->port, "80");
    } else {
        return -1;
    }
    if (snprintf(u->path, sizeof u->path, "%s", *path ? path : "/") >= (int)sizeof u->path)
        return -1;
    return 0;
}

static void set_timeouts(int fd, double seconds)
{
    struct timeval tv;
    tv.tv_sec = (time_t)seconds;
    tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Connects to the first address that answers within `timeout` seconds; returns fd or -exit code. */
static int connect_to(const struct url *u, double timeout)
{
    struct addrinfo hints, *found, *ai;
    int rc, fd = -1, status = EXIT_CONNECT;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(u->host, u->port, &hints, &found);
    if (rc != 0) {
        fprintf(stderr, "%s: %s: %s\n", program, u->host, gai_strerror(rc));
        return -EXIT_CONNECT;
    }
    for (ai = found; ai; ai = ai->ai_next) {
        struct pollfd pfd;
        int flags, err = 0;
        socklen_t err_len = sizeof err;
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        /* Non-blocking connect + poll: the only portable way to bound the connect time. */
        flags = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            pfd.fd = fd;
            pfd.events = POLLOUT;
            rc = poll(&pfd, 1, (int)(timeout * 1000));
            if (rc == 0) {
                errno = ETIMEDOUT;
                status = EXIT_TIMEOUT;
                rc = -1;
            } else if (rc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) == 0 && err) {
                errno = err;
                rc = -1;
            } else if (rc > 0) {
                rc = 0;
            }
        }
        if (rc == 0) {
            fcntl(fd, F_SETFL, flags);
            break;
        }
        fprintf(stderr, "%s: connect to %s port %s: %s\n", program, u->host, u->port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(found);
    return fd >= 0 ? fd : -status;
}

/* Sends all of buf; 0 or an exit code. */
static int send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int timed_out = errno == EAGAIN || errno == EWOULDBLOCK;
            fprintf(stderr, "%s: send: %s\n", program, timed_out ? "timed out" : strerror(errno));
            return timed_out ? EXIT_TIMEOUT : EXIT_NETWORK;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Streams the open file to the socket in small pieces, as a device with little memory would. */
static int send_file(int fd, FILE *f)
{
    char chunk[16384];
    size_t n;
    int rc;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if ((rc = send_all(fd, chunk, n)) != 0)
            return rc;
    if (ferror(f)) {
        fprintf(stderr, "%s: reading the image failed\n", program);
        return EXIT_READ_FILE;
    }
    return 0;
}

/* Reads until the server closes; *out is malloc'd. 0 or an exit code. */
static int receive_all(int fd, char **out, size_t *out_len)
{
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap + 1);
    if (!buf)
        return EXIT_NETWORK;
    for (;;) {
        ssize_t n;
        if (len == cap) {
            char *grown;
            if ((long)cap >= MAX_RESPONSE) {
                fprintf(stderr, "%s: response larger than %ld bytes\n", program, MAX_RESPONSE);
                free(buf);
                return EXIT_BAD_RESPONSE;
            }
            cap *= 2;
            grown = realloc(buf, cap + 1);
            if (!grown) {
                free(buf);
                return EXIT_NETWORK;
            }
            buf = grown;
        }
        n = recv(fd, buf + len, cap - len, 0);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int timed_out = errno == EAGAIN || errno == EWOULDBLOCK;
            fprintf(stderr, "%s: receive: %s\n", program, timed_out ? "timed out" : strerror(errno));
            free(buf);
            return timed_out ? EXIT_TIMEOUT : EXIT_NETWORK;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int parse_seconds(const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !(v > 0) || v > 86400)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct url u;
    const char *type = "application/octet-stream", *url_arg, *image_path;
    double connect_timeout = 5, timeout = 60;
    int multipart = 0, ipv6, i, fd, rc, received, http_status;
    char boundary[64], content_type[256], head[4096], part_head[1024], part_tail[128];
    char *response, *body;
    size_t response_len;
    long long content_length;
    struct stat st;
    FILE *image;

    for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--multipart") == 0)
            multipart = 1;
        else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc)
            type = argv[++i];
        else if (strcmp(argv[i], "--connect-timeout") == 0 && i + 1 < argc) {
            if (parse_seconds(argv[++i], &connect_timeout) != 0)
                break;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            if (parse_seconds(argv[++i], &timeout) != 0)
                break;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else
            break;
    }
    if (argc - i != 2 || strpbrk(type, "\r\n")) {
        usage(stderr);
        return EXIT_USAGE;
    }
    url_arg = argv[i];
    image_path = argv[i + 1];
    if (parse_url(url_arg, &u) != 0) {
        fprintf(stderr, "%s: not an http://HOST[:PORT]/PATH URL: %s\n", program, url_arg);
        return EXIT_USAGE;
    }
    ipv6 = strchr(u.host, ':') != NULL;
    image = fopen(image_path, "rb");
    if (!image || fstat(fileno(image), &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: %s: %s\n", program, image_path, image ? "not a regular file" : strerror(errno));
        return EXIT_READ_FILE;
    }

    content_length = (long long)st.st_size;
    part_head[0] = part_tail[0] = '\0';
    if (multipart) {
        const char *name = base_name(image_path);
        /* The boundary only has to be absent from the image; time and pid make that near certain. */
        snprintf(boundary, sizeof boundary, "ocr_post-%ld-%ld", (long)time(NULL), (long)getpid());
        if (strpbrk(name, "\"\r\n"))
            name = "image";
        snprintf(part_head, sizeof part_head,
                 "--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"%s\"\r\n"
                 "Content-Type: %s\r\n\r\n", boundary, name, type);
        snprintf(part_tail, sizeof part_tail, "\r\n--%s--\r\n", boundary);
        content_length += (long long)(strlen(part_head) + strlen(part_tail));
        snprintf(content_type, sizeof content_type, "multipart/form-data; boundary=%s", boundary);
    } else if (snprintf(content_type, sizeof content_type, "%s", type) >= (int)sizeof content_type) {
        usage(stderr);
        fclose(image);
        return EXIT_USAGE;
    }
    if (snprintf(head, sizeof head,
                 "POST %s HTTP/1.0\r\nHost: %s%s%s%s%s\r\nUser-Agent: ocr_post/1\r\n"
                 "Content-Type: %s\r\nContent-Length: %lld\r\nConnection: close\r\n\r\n",
                 u.path, ipv6 ? "[" : "", u.host, ipv6 ? "]" : "", strcmp(u.port, "80") ? ":" : "", strcmp(u.port, "80") ? u.port : "",
                 content_type, content_length) >= (int)sizeof head) {
        fprintf(stderr, "%s: URL too long\n", program);
        fclose(image);
        return EXIT_USAGE;
    }

    signal(SIGPIPE, SIG_IGN); /* a server that closes early must not kill us */
    fd = connect_to(&u, connect_timeout);
    if (fd < 0) {
        fclose(image);
        return -fd;
    }
    set_timeouts(fd, timeout);
    rc = send_all(fd, head, strlen(head));
    if (!rc)
        rc = send_all(fd, part_head, strlen(part_head));
    if (!rc)
        rc = send_file(fd, image);
    if (!rc)
        rc = send_all(fd, part_tail, strlen(part_tail));
    fclose(image);
    /* Even if sending failed, the server may have answered (say, 413 before reading the body). */
    if (rc == EXIT_NETWORK)
        shutdown(fd, SHUT_WR);
    received = receive_all(fd, &response, &response_len);
    close(fd);
    if (received != 0)
        return rc ? rc : received;

    body = strstr(response, "\r\n\r\n");
    if (sscanf(response, "HTTP/%*d.%*d %d", &http_status) != 1 || !body) {
        fprintf(stderr, "%s: malformed HTTP response\n", program);
        free(response);
        return EXIT_BAD_RESPONSE;
    }
    body += 4;
    fwrite(body, 1, response_len - (size_t)(body - response), stdout);
    fflush(stdout);
    if (http_status >= 400) {
        char *eol = strstr(response, "\r\n");
        *eol = '\0';
        fprintf(stderr, "%s: %s\n", program, response);
    }
    free(response);
    return http_status >= 400 ? EXIT_HTTP_ERROR : rc;
}
