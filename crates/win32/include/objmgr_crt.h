/*
 * objmgr_crt.h: the Microsoft C runtime functions that Windows sources call,
 * for objmgr's windows.h (included by it; not meant to be included alone).
 *
 * - Wide strings are WCHAR (UTF-16, a 2-byte wchar_t under -fshort-wchar).
 *   glibc's wide functions work on 4-byte wchar_t, so windows.h renames the
 *   ones Windows code calls (wcslen, swprintf, ...) to these, which work on
 *   2-byte strings; wide output (wprintf, fwprintf) is written as UTF-8.
 * - The printf family here follows MSVC's format rules: in the wide functions
 *   %s and %c take WCHAR strings and characters, %hs/%hc narrow ones, %ls/%lc
 *   wide ones, %S/%C the opposite of %s/%c; I64, I32 and I size prefixes; %n
 *   is ignored (MSVC refuses it by default); `l` on an integer is 32 bits
 *   (MSVC's long, the LONG and DWORD of windows.h).
 * - The secure (_s) functions return errno values; where MSVC would call the
 *   invalid-parameter handler they empty the destination and fail instead.
 *
 * Everything is static inline: nothing is added to a program that does not
 * call it.
 */
#ifndef OBJMGR_CRT_H
#define OBJMGR_CRT_H

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wchar.h>
#ifdef __cplusplus
#include <cwchar>
#include <cstdlib>
#include <cstring>
#endif

typedef int errno_t;
#ifndef _TRUNCATE
#define _TRUNCATE ((size_t)-1)
#endif
#ifndef STRUNCATE
#define STRUNCATE 80
#endif
#ifndef _countof
#define _countof(array) (sizeof(array) / sizeof((array)[0]))
#endif
#define _stricmp strcasecmp
#define _strnicmp strncasecmp
#define stricmp strcasecmp
#define strnicmp strncasecmp
#define _fileno fileno

/* ---- Output buffer and the MSVC-style formatter ------------------------ */

typedef struct objmgr_crt_buf {
    char *text;
    size_t len;
    size_t cap;
    int failed;
} objmgr_crt_buf;

static inline void objmgr_crt_put(objmgr_crt_buf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = (char *)realloc(b->text, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->text = grown;
        b->cap = cap;
    }
    memcpy(b->text + b->len, s, n);
    b->len += n;
    b->text[b->len] = 0;
}

/* UTF-16 to UTF-8; a lone surrogate becomes U+FFFD. */
static inline void objmgr_crt_put_utf16(objmgr_crt_buf *b, const WCHAR *s, size_t units) {
    for (size_t i = 0; i < units; i++) {
        unsigned long c = (unsigned short)s[i];
        if (c >= 0xD800 && c < 0xDC00 && i + 1 < units && (unsigned short)s[i + 1] >= 0xDC00 &&
            (unsigned short)s[i + 1] < 0xE000) {
            c = 0x10000 + ((c - 0xD800) << 10) + ((unsigned short)s[++i] - 0xDC00);
        } else if (c >= 0xD800 && c < 0xE000) {
            c = 0xFFFD;
        }
        char out[4];
        size_t n;
        if (c < 0x80) {
            out[0] = (char)c;
            n = 1;
        } else if (c < 0x800) {
            out[0] = (char)(0xC0 | (c >> 6));
            out[1] = (char)(0x80 | (c & 0x3F));
            n = 2;
        } else if (c < 0x10000) {
            out[0] = (char)(0xE0 | (c >> 12));
            out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[2] = (char)(0x80 | (c & 0x3F));
            n = 3;
        } else {
            out[0] = (char)(0xF0 | (c >> 18));
            out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
            out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[3] = (char)(0x80 | (c & 0x3F));
            n = 4;
        }
        objmgr_crt_put(b, out, n);
    }
}

/* UTF-8 to UTF-16 into out[cap] (no NUL added); returns the units the whole
   text needs. Bytes that are not UTF-8 become U+FFFD. */
static inline size_t objmgr_crt_utf8_to_16(const char *s, size_t n, WCHAR *out, size_t cap) {
    size_t units = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c0 = (unsigned char)s[i];
        unsigned long c = 0xFFFD;
        size_t len = 1, need = 0;
        if (c0 < 0x80) {
            c = c0;
        } else if (c0 >= 0xC2 && c0 < 0xE0) {
            c = c0 & 0x1F;
            need = 1;
        } else if (c0 >= 0xE0 && c0 < 0xF0) {
            c = c0 & 0x0F;
            need = 2;
        } else if (c0 >= 0xF0 && c0 < 0xF5) {
            c = c0 & 0x07;
            need = 3;
        }
        if (need) {
            size_t k = 1;
            for (; k <= need && i + k < n && ((unsigned char)s[i + k] & 0xC0) == 0x80; k++)
                c = (c << 6) | ((unsigned char)s[i + k] & 0x3F);
            if (k <= need || (need == 2 && (c < 0x800 || (c >= 0xD800 && c < 0xE000))) ||
                (need == 3 && (c < 0x10000 || c > 0x10FFFF))) {
                c = 0xFFFD;
                len = 1;
            } else {
                len = need + 1;
            }
        }
        i += len;
        if (c >= 0x10000) {
            if (units + 1 < cap) {
                out[units] = (WCHAR)(0xD800 + ((c - 0x10000) >> 10));
                out[units + 1] = (WCHAR)(0xDC00 + ((c - 0x10000) & 0x3FF));
            }
            units += 2;
        } else {
            if (units < cap) out[units] = (WCHAR)c;
            units += 1;
        }
    }
    return units;
}

static inline size_t objmgr_crt_wlen(const WCHAR *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static inline void objmgr_crt_putf(objmgr_crt_buf *b, const char *spec, ...) {
    va_list ap, again;
    va_start(ap, spec);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, spec, ap);
    va_end(ap);
    if (n > 0) {
        char *tmp = (char *)malloc((size_t)n + 1);
        if (tmp) {
            vsnprintf(tmp, (size_t)n + 1, spec, again);
            objmgr_crt_put(b, tmp, (size_t)n);
            free(tmp);
        } else {
            b->failed = 1;
        }
    }
    va_end(again);
}

enum { OBJMGR_LEN_NONE, OBJMGR_LEN_HH, OBJMGR_LEN_H, OBJMGR_LEN_L, OBJMGR_LEN_LL, OBJMGR_LEN_SIZE,
       OBJMGR_LEN_MAX, OBJMGR_LEN_LONG_DOUBLE, OBJMGR_LEN_WIDE, OBJMGR_LEN_32 };

/* Formats fmt (UTF-8) with MSVC's rules into b as UTF-8; wide_default says
   whether %s and %c take WCHAR (the wide functions) or char. */
static inline void objmgr_crt_vformat(objmgr_crt_buf *b, const char *fmt, int wide_default, va_list ap) {
    objmgr_crt_put(b, "", 0);
    for (const char *f = fmt; *f;) {
        if (*f != '%') {
            const char *next = strchr(f, '%');
            size_t n = next ? (size_t)(next - f) : strlen(f);
            objmgr_crt_put(b, f, n);
            f += n;
            continue;
        }
        const char *start = f++;
        if (*f == '%') {
            objmgr_crt_put(b, "%", 1);
            f++;
            continue;
        }
        char spec[24];
        size_t sl = 0;
        spec[sl++] = '%';
        while (*f && strchr("-+ #0", *f)) {
            if (sl < 8) spec[sl++] = *f;
            f++;
        }
        int width = -1, precision = -1;
        if (*f == '*') {
            width = va_arg(ap, int);
            if (width < 0) { /* a negative * width means left-justify */
                if (sl < 9) spec[sl++] = '-';
                width = width == INT_MIN ? 0 : -width;
            }
            f++;
        } else if (isdigit((unsigned char)*f)) {
            width = 0;
            while (isdigit((unsigned char)*f)) width = width < 100000 ? width * 10 + (*f++ - '0') : (f++, width);
        }
        if (*f == '.') {
            f++;
            precision = 0;
            if (*f == '*') {
                precision = va_arg(ap, int);
                if (precision < 0) precision = -1; /* as if omitted */
                f++;
            } else {
                while (isdigit((unsigned char)*f))
                    precision = precision < 100000 ? precision * 10 + (*f++ - '0') : (f++, precision);
            }
        }
        int len = OBJMGR_LEN_NONE;
        if (f[0] == 'h' && f[1] == 'h') len = OBJMGR_LEN_HH, f += 2;
        else if (f[0] == 'h') len = OBJMGR_LEN_H, f += 1;
        else if (f[0] == 'l' && f[1] == 'l') len = OBJMGR_LEN_LL, f += 2;
        else if (f[0] == 'l') len = OBJMGR_LEN_L, f += 1;
        else if (f[0] == 'L') len = OBJMGR_LEN_LONG_DOUBLE, f += 1;
        else if (f[0] == 'w') len = OBJMGR_LEN_WIDE, f += 1;
        else if (f[0] == 'I' && f[1] == '6' && f[2] == '4') len = OBJMGR_LEN_LL, f += 3;
        else if (f[0] == 'I' && f[1] == '3' && f[2] == '2') len = OBJMGR_LEN_32, f += 3;
        else if (f[0] == 'I' || f[0] == 'z' || f[0] == 't') len = OBJMGR_LEN_SIZE, f += 1;
        else if (f[0] == 'j') len = OBJMGR_LEN_MAX, f += 1;
        char conv = *f;
        if (!conv) {
            objmgr_crt_put(b, start, strlen(start));
            break;
        }
        f++;
        /* Strings and characters apply their precision before formatting. */
        int text_conv = strchr("sScC", conv) != NULL;
        if (width >= 0) spec[sl++] = '*';
        if (precision >= 0 && !text_conv) {
            spec[sl++] = '.';
            spec[sl++] = '*';
        }
        int w = width >= 0 ? width : 0, p = precision, use_p = precision >= 0 && !text_conv;
#define OBJMGR_PUT_NUMBER(suffix, value)                                                          \
    do {                                                                                         \
        memcpy(spec + sl, suffix, sizeof suffix);                                                \
        if (width >= 0 && use_p) objmgr_crt_putf(b, spec, w, p, value);                          \
        else if (width >= 0) objmgr_crt_putf(b, spec, w, value);                                 \
        else if (use_p) objmgr_crt_putf(b, spec, p, value);                                      \
        else objmgr_crt_putf(b, spec, value);                                                    \
    } while (0)
        switch (conv) {
        case 'd':
        case 'i': {
            long long v;
            switch (len) {
            case OBJMGR_LEN_HH: v = (signed char)va_arg(ap, int); break;
            case OBJMGR_LEN_H: v = (short)va_arg(ap, int); break;
            case OBJMGR_LEN_L: v = va_arg(ap, int); break; /* MSVC's long is 32 bits */
            case OBJMGR_LEN_LL: v = va_arg(ap, long long); break;
            case OBJMGR_LEN_SIZE: v = (long long)va_arg(ap, ptrdiff_t); break;
            case OBJMGR_LEN_MAX: v = (long long)va_arg(ap, intmax_t); break;
            default: v = va_arg(ap, int); break;
            }
            OBJMGR_PUT_NUMBER("lld", v);
            break;
        }
        case 'o':
        case 'u':
        case 'x':
        case 'X': {
            unsigned long long v;
            switch (len) {
            case OBJMGR_LEN_HH: v = (unsigned char)va_arg(ap, unsigned); break;
            case OBJMGR_LEN_H: v = (unsigned short)va_arg(ap, unsigned); break;
            case OBJMGR_LEN_L: v = va_arg(ap, unsigned); break; /* as above */
            case OBJMGR_LEN_LL: v = va_arg(ap, unsigned long long); break;
            case OBJMGR_LEN_SIZE: v = va_arg(ap, size_t); break;
            case OBJMGR_LEN_MAX: v = (unsigned long long)va_arg(ap, uintmax_t); break;
            default: v = va_arg(ap, unsigned); break;
            }
            char suffix[4] = {'l', 'l', conv, 0};
            OBJMGR_PUT_NUMBER(suffix, v);
            break;
        }
        case 'e': case 'E': case 'f': case 'F': case 'g': case 'G': case 'a': case 'A':
            if (len == OBJMGR_LEN_LONG_DOUBLE) {
                long double v = va_arg(ap, long double);
                char suffix[3] = {'L', conv, 0};
                OBJMGR_PUT_NUMBER(suffix, v);
            } else {
                double v = va_arg(ap, double);
                char suffix[2] = {conv, 0};
                OBJMGR_PUT_NUMBER(suffix, v);
            }
            break;
        case 'p': {
            void *v = va_arg(ap, void *);
            OBJMGR_PUT_NUMBER("p", v);
            break;
        }
        case 'n':
            (void)va_arg(ap, void *);
            break;
        case 'c':
        case 'C':
        case 's':
        case 'S': {
            int wide = len == OBJMGR_LEN_H    ? 0
                       : len == OBJMGR_LEN_L || len == OBJMGR_LEN_WIDE ? 1
                       : (conv == 'c' || conv == 's') ? wide_default
                                                    : !wide_default;
            objmgr_crt_buf text = {NULL, 0, 0, 0};
            if (conv == 'c' || conv == 'C') {
                int c = va_arg(ap, int);
                if (wide) {
                    WCHAR unit = (WCHAR)c;
                    objmgr_crt_put_utf16(&text, &unit, 1);
                } else {
                    char byte = (char)c;
                    objmgr_crt_put(&text, &byte, 1);
                }
            } else if (wide) {
                const WCHAR *s = va_arg(ap, const WCHAR *);
                if (!s) {
                    objmgr_crt_put(&text, "(null)", 6);
                } else {
                    size_t n = 0;
                    while (s[n] && (precision < 0 || n < (size_t)precision)) n++;
                    objmgr_crt_put_utf16(&text, s, n);
                }
            } else {
                const char *s = va_arg(ap, const char *);
                if (!s) {
                    objmgr_crt_put(&text, "(null)", 6);
                } else {
                    size_t n = 0;
                    while (s[n] && (precision < 0 || n < (size_t)precision)) n++;
                    objmgr_crt_put(&text, s, n);
                }
            }
            const char *value = text.text ? text.text : "";
            OBJMGR_PUT_NUMBER("s", value);
            if (text.failed) b->failed = 1;
            free(text.text);
            break;
        }
        default: /* not a conversion: printed as written, as MSVC does */
            objmgr_crt_put(b, start, (size_t)(f - start));
            break;
        }
#undef OBJMGR_PUT_NUMBER
    }
}

/* The format of a wide function, as UTF-8 (NULL if out of memory). */
static inline char *objmgr_crt_narrow(const WCHAR *s) {
    objmgr_crt_buf b = {NULL, 0, 0, 0};
    objmgr_crt_put_utf16(&b, s, objmgr_crt_wlen(s));
    objmgr_crt_put(&b, "", 0);
    if (b.failed) {
        free(b.text);
        return NULL;
    }
    return b.text;
}

/* Formats a wide format into UTF-8 (caller frees; NULL on failure). */
static inline char *objmgr_crt_vformat_wide(const WCHAR *fmt, va_list ap, size_t *len) {
    char *narrow_fmt = fmt ? objmgr_crt_narrow(fmt) : NULL;
    if (!narrow_fmt) return NULL;
    objmgr_crt_buf b = {NULL, 0, 0, 0};
    objmgr_crt_vformat(&b, narrow_fmt, 1, ap);
    free(narrow_fmt);
    if (b.failed) {
        free(b.text);
        return NULL;
    }
    *len = b.len;
    return b.text;
}

static inline char *objmgr_crt_vformat_narrow(const char *fmt, va_list ap, size_t *len) {
    if (!fmt) return NULL;
    objmgr_crt_buf b = {NULL, 0, 0, 0};
    objmgr_crt_vformat(&b, fmt, 0, ap);
    if (b.failed) {
        free(b.text);
        return NULL;
    }
    *len = b.len;
    return b.text;
}

/* How the functions below store a result that may not fit in count units. */
enum {
    OBJMGR_FIT_ISO,      /* swprintf: truncated + NUL, -1 when it did not fit */
    OBJMGR_FIT_LEGACY,   /* _snprintf: no NUL when exactly full, -1 when too long */
    OBJMGR_FIT_SECURE    /* sprintf_s: empty + -1 (ERANGE) when it did not fit */
};

static inline int objmgr_crt_store_wide(WCHAR *buf, size_t count, const char *text, size_t len, int fit) {
    if (!text) return -1;
    size_t units = objmgr_crt_utf8_to_16(text, len, buf, count);
    /* _vsnwprintf(NULL, 0, ...) is how the length is asked for. */
    if (!buf || count == 0) return fit == OBJMGR_FIT_LEGACY && !buf ? (int)units : -1;
    if (units < count) {
        buf[units] = 0;
        return (int)units;
    }
    if (fit == OBJMGR_FIT_LEGACY) return units == count ? (int)units : -1;
    buf[fit == OBJMGR_FIT_SECURE ? 0 : count - 1] = 0;
    errno = ERANGE;
    return -1;
}

static inline int objmgr_crt_store_narrow(char *buf, size_t count, const char *text, size_t len, int fit) {
    if (!text) return -1;
    /* _vsnprintf(NULL, 0, ...) is how the length is asked for. */
    if (!buf || count == 0) return fit == OBJMGR_FIT_LEGACY && !buf ? (int)len : -1;
    if (len < count) {
        memcpy(buf, text, len + 1);
        return (int)len;
    }
    memcpy(buf, text, fit == OBJMGR_FIT_LEGACY ? count : count - 1);
    if (fit == OBJMGR_FIT_LEGACY) return len == count ? (int)len : -1;
    buf[fit == OBJMGR_FIT_SECURE ? 0 : count - 1] = 0;
    errno = ERANGE;
    return -1;
}

/* ---- Narrow MSVC functions --------------------------------------------- */

/* Formats into buf[count] with the given rule for a result that does not fit. */
static inline int objmgr_crt_vprint_narrow(char *buf, size_t count, const char *fmt, va_list ap, int fit) {
    size_t len = 0;
    char *text = objmgr_crt_vformat_narrow(fmt, ap, &len);
    int r = objmgr_crt_store_narrow(buf, count, text, len, fit);
    free(text);
    return r;
}
static inline int _vsnprintf(char *buf, size_t count, const char *fmt, va_list ap) {
    return objmgr_crt_vprint_narrow(buf, count, fmt, ap, OBJMGR_FIT_LEGACY);
}
static inline int _snprintf(char *buf, size_t count, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = _vsnprintf(buf, count, fmt, ap);
    va_end(ap);
    return r;
}
static inline int vsprintf_s(char *buf, size_t size, const char *fmt, va_list ap) {
    return objmgr_crt_vprint_narrow(buf, size, fmt, ap, OBJMGR_FIT_SECURE);
}
static inline int sprintf_s(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vsprintf_s(buf, size, fmt, ap);
    va_end(ap);
    return r;
}
/* At most `count` characters (_TRUNCATE: as many as fit), always
   terminated; -1 when the output was cut. */
static inline int _vsnprintf_s(char *buf, size_t size, size_t count, const char *fmt, va_list ap) {
    size_t len = 0;
    char *text = objmgr_crt_vformat_narrow(fmt, ap, &len);
    if (!text || !buf || size == 0) {
        free(text);
        return -1;
    }
    size_t limit = count == _TRUNCATE ? size - 1 : count;
    int r;
    if (len <= limit && len < size) {
        memcpy(buf, text, len + 1);
        r = (int)len;
    } else if (count == _TRUNCATE || limit < size) {
        size_t keep = limit < size - 1 ? limit : size - 1;
        memcpy(buf, text, keep);
        buf[keep] = 0;
        r = -1;
    } else {
        buf[0] = 0; /* count does not fit the buffer: MSVC's error case */
        errno = ERANGE;
        r = -1;
    }
    free(text);
    return r;
}
static inline int _snprintf_s(char *buf, size_t size, size_t count, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = _vsnprintf_s(buf, size, count, fmt, ap);
    va_end(ap);
    return r;
}

/* strnlen and strdup are POSIX, not ISO C: objmgr's own, so strict -std
   modes build too. */
static inline size_t objmgr_crt_strnlen(const char *s, size_t max) {
    size_t n = 0;
    while (n < max && s[n]) n++;
    return n;
}
static inline char *_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = (char *)malloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

static inline errno_t strncpy_s(char *dst, size_t size, const char *src, size_t count) {
    if (!dst || size == 0) return EINVAL;
    if (!src) {
        dst[0] = 0;
        return EINVAL;
    }
    size_t n = objmgr_crt_strnlen(src, count);
    if (n >= size) {
        if (count == _TRUNCATE) {
            memcpy(dst, src, size - 1);
            dst[size - 1] = 0;
            return STRUNCATE;
        }
        dst[0] = 0;
        return ERANGE;
    }
    memcpy(dst, src, n);
    dst[n] = 0;
    return 0;
}
static inline errno_t strcpy_s(char *dst, size_t size, const char *src) {
    if (!dst || size == 0) return EINVAL;
    if (!src) {
        dst[0] = 0;
        return EINVAL;
    }
    size_t n = strlen(src);
    if (n >= size) {
        dst[0] = 0;
        return ERANGE;
    }
    memcpy(dst, src, n + 1);
    return 0;
}
static inline errno_t strcat_s(char *dst, size_t size, const char *src) {
    if (!dst || size == 0) return EINVAL;
    size_t used = objmgr_crt_strnlen(dst, size);
    if (!src || used == size) {
        dst[0] = 0;
        return EINVAL;
    }
    return strcpy_s(dst + used, size - used, src) == 0 ? 0 : (dst[0] = 0, ERANGE);
}
static inline errno_t fopen_s(FILE **file, const char *name, const char *mode) {
    if (!file || !name || !mode) return EINVAL;
    *file = fopen(name, mode);
    return *file ? 0 : errno;
}

static inline char *objmgr_crt_ulltoa(unsigned long long v, int negative, char *buf, int radix) {
    char tmp[72];
    size_t n = 0;
    if (radix < 2 || radix > 36) {
        buf[0] = 0;
        return buf;
    }
    do {
        unsigned d = (unsigned)(v % (unsigned)radix);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= (unsigned)radix;
    } while (v);
    size_t i = 0;
    if (negative) buf[i++] = '-';
    while (n) buf[i++] = tmp[--n];
    buf[i] = 0;
    return buf;
}
/* Negative values are signed only in base 10, as MSVC's _itoa does. */
static inline char *_i64toa(long long v, char *buf, int radix) {
    return radix == 10 && v < 0 ? objmgr_crt_ulltoa(0ULL - (unsigned long long)v, 1, buf, radix)
                                : objmgr_crt_ulltoa((unsigned long long)v, 0, buf, radix);
}
static inline char *_ui64toa(unsigned long long v, char *buf, int radix) { return objmgr_crt_ulltoa(v, 0, buf, radix); }
static inline char *_itoa(int v, char *buf, int radix) {
    return radix == 10 ? _i64toa(v, buf, radix) : objmgr_crt_ulltoa((unsigned)v, 0, buf, radix);
}
static inline char *_ltoa(long v, char *buf, int radix) {
    return radix == 10 ? _i64toa(v, buf, radix) : objmgr_crt_ulltoa((unsigned long)v, 0, buf, radix);
}
static inline char *_ultoa(unsigned long v, char *buf, int radix) { return objmgr_crt_ulltoa(v, 0, buf, radix); }
static inline errno_t _itoa_s(int v, char *buf, size_t size, int radix) {
    char tmp[72];
    if (!buf || size == 0 || radix < 2 || radix > 36) return EINVAL;
    _itoa(v, tmp, radix);
    return strcpy_s(buf, size, tmp);
}
static inline char *_strupr(char *s) {
    for (char *p = s; *p; p++) *p = (char)toupper((unsigned char)*p);
    return s;
}
static inline char *_strlwr(char *s) {
    for (char *p = s; *p; p++) *p = (char)tolower((unsigned char)*p);
    return s;
}

#ifdef __cplusplus
/* MSVC's template overloads that take the size from an array. */
template <size_t N> inline errno_t strcpy_s(char (&dst)[N], const char *src) { return strcpy_s(dst, N, src); }
template <size_t N> inline errno_t strcat_s(char (&dst)[N], const char *src) { return strcat_s(dst, N, src); }
template <size_t N> inline errno_t strncpy_s(char (&dst)[N], const char *src, size_t count) {
    return strncpy_s(dst, N, src, count);
}
template <size_t N> inline int sprintf_s(char (&buf)[N], const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vsprintf_s(buf, N, fmt, ap);
    va_end(ap);
    return r;
}
template <size_t N> inline errno_t _itoa_s(int v, char (&buf)[N], int radix) { return _itoa_s(v, buf, N, radix); }
#endif


/* ---- user32/kernel32 functions that take variable arguments ------------ */

/* wsprintf: at most 1024 characters, NUL included, as on Windows. */
static inline int wvsprintfA(LPSTR buf, LPCSTR fmt, va_list ap) {
    size_t len = 0;
    char *text = objmgr_crt_vformat_narrow(fmt, ap, &len);
    if (!text) return -1;
    if (len > 1023) len = 1023;
    memcpy(buf, text, len);
    buf[len] = 0;
    free(text);
    return (int)len;
}
static inline int WINAPIV wsprintfA(LPSTR buf, LPCSTR fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = wvsprintfA(buf, fmt, ap);
    va_end(ap);
    return r;
}

/* The highest insert number (%1..%99) of a message string. */
#define OBJMGR_INSERT_COUNT(s, count)                                                        \
    do {                                                                                     \
        for (size_t i_ = 0; (s) && (s)[i_]; i_++) {                                          \
            if ((s)[i_] != '%' || !(s)[i_ + 1]) continue;                                    \
            i_++;                                                                            \
            if ((s)[i_] < '1' || (s)[i_] > '9') continue;                                    \
            int n_ = (s)[i_] - '0';                                                          \
            if ((s)[i_ + 1] >= '0' && (s)[i_ + 1] <= '9') n_ = n_ * 10 + ((s)[++i_] - '0');  \
            if (n_ > (count)) (count) = n_;                                                  \
        }                                                                                    \
    } while (0)

/* FormatMessage with a va_list: its inserts (one pointer-sized value each,
   as on Windows) are read into an array before the call. */
static inline DWORD objmgr_format_message_a(DWORD flags, LPCVOID source, DWORD id, DWORD lang, LPSTR buf, DWORD size,
                                            va_list *args) {
    DWORD_PTR inserts[99] = {0};
    if (args && !(flags & (FORMAT_MESSAGE_ARGUMENT_ARRAY | FORMAT_MESSAGE_IGNORE_INSERTS))) {
        int count = 0;
        /* objmgr's system messages have no inserts: only a message string's
           are read from the va_list. */
        if (flags & FORMAT_MESSAGE_FROM_STRING) OBJMGR_INSERT_COUNT((const char *)source, count);
        for (int i = 0; i < count; i++) inserts[i] = va_arg(*args, DWORD_PTR);
        flags |= FORMAT_MESSAGE_ARGUMENT_ARRAY;
        args = (va_list *)(void *)inserts;
    }
    return (FormatMessageA)(flags, source, id, lang, buf, size, args);
}
#define FormatMessageA(flags, source, id, lang, buf, size, args) \
    objmgr_format_message_a(flags, source, id, lang, buf, size, args)

/* ---- Wide functions (2-byte WCHAR strings) ----------------------------- */
#ifdef OBJMGR_WIDE_CHAR

static inline size_t objmgr_wcslen(const WCHAR *s) { return objmgr_crt_wlen(s); }
static inline size_t objmgr_wcsnlen(const WCHAR *s, size_t max) {
    size_t n = 0;
    while (n < max && s[n]) n++;
    return n;
}
static inline WCHAR *objmgr_wcscpy(WCHAR *dst, const WCHAR *src) {
    size_t i = 0;
    while ((dst[i] = src[i]) != 0) i++;
    return dst;
}
static inline WCHAR *objmgr_wcsncpy(WCHAR *dst, const WCHAR *src, size_t n) {
    size_t i = 0;
    for (; i < n && src[i]; i++) dst[i] = src[i];
    for (; i < n; i++) dst[i] = 0;
    return dst;
}
static inline WCHAR *objmgr_wcscat(WCHAR *dst, const WCHAR *src) {
    objmgr_wcscpy(dst + objmgr_crt_wlen(dst), src);
    return dst;
}
static inline WCHAR *objmgr_wcsncat(WCHAR *dst, const WCHAR *src, size_t n) {
    WCHAR *end = dst + objmgr_crt_wlen(dst);
    size_t i = 0;
    for (; i < n && src[i]; i++) end[i] = src[i];
    end[i] = 0;
    return dst;
}
static inline int objmgr_wcsncmp(const WCHAR *a, const WCHAR *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) return (unsigned short)a[i] < (unsigned short)b[i] ? -1 : 1;
        if (!a[i]) return 0;
    }
    return 0;
}
static inline int objmgr_wcscmp(const WCHAR *a, const WCHAR *b) { return objmgr_wcsncmp(a, b, (size_t)-1); }
static inline WCHAR objmgr_crt_wlower(WCHAR c) { return c >= 'A' && c <= 'Z' ? (WCHAR)(c + 32) : c; }
static inline WCHAR objmgr_crt_wupper(WCHAR c) { return c >= 'a' && c <= 'z' ? (WCHAR)(c - 32) : c; }
/* Case-insensitive in ASCII, as MSVC's _wcsicmp in the "C" locale. */
static inline int _wcsnicmp(const WCHAR *a, const WCHAR *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        WCHAR x = objmgr_crt_wlower(a[i]), y = objmgr_crt_wlower(b[i]);
        if (x != y) return (unsigned short)x < (unsigned short)y ? -1 : 1;
        if (!x) return 0;
    }
    return 0;
}
static inline int _wcsicmp(const WCHAR *a, const WCHAR *b) { return _wcsnicmp(a, b, (size_t)-1); }
static inline WCHAR *_wcslwr(WCHAR *s) {
    for (WCHAR *p = s; *p; p++) *p = objmgr_crt_wlower(*p);
    return s;
}
static inline WCHAR *_wcsupr(WCHAR *s) {
    for (WCHAR *p = s; *p; p++) *p = objmgr_crt_wupper(*p);
    return s;
}
static inline WCHAR *objmgr_wcschr(const WCHAR *s, WCHAR c) {
    for (;; s++) {
        if (*s == c) return (WCHAR *)s;
        if (!*s) return NULL;
    }
}
static inline WCHAR *objmgr_wcsrchr(const WCHAR *s, WCHAR c) {
    const WCHAR *last = NULL;
    for (;; s++) {
        if (*s == c) last = s;
        if (!*s) return (WCHAR *)last;
    }
}
static inline WCHAR *objmgr_wcsstr(const WCHAR *hay, const WCHAR *needle) {
    size_t n = objmgr_crt_wlen(needle);
    for (; *hay; hay++)
        if (objmgr_wcsncmp(hay, needle, n) == 0) return (WCHAR *)hay;
    return n == 0 ? (WCHAR *)hay : NULL;
}
static inline WCHAR *objmgr_wcsdup(const WCHAR *s) {
    size_t bytes = (objmgr_crt_wlen(s) + 1) * sizeof(WCHAR);
    WCHAR *copy = (WCHAR *)malloc(bytes);
    if (copy) memcpy(copy, s, bytes);
    return copy;
}
static inline WCHAR *objmgr_wmemcpy(WCHAR *d, const WCHAR *s, size_t n) { return (WCHAR *)memcpy(d, s, n * sizeof(WCHAR)); }
static inline WCHAR *objmgr_wmemmove(WCHAR *d, const WCHAR *s, size_t n) { return (WCHAR *)memmove(d, s, n * sizeof(WCHAR)); }
static inline WCHAR *objmgr_wmemset(WCHAR *d, WCHAR c, size_t n) {
    for (size_t i = 0; i < n; i++) d[i] = c;
    return d;
}
static inline int objmgr_wmemcmp(const WCHAR *a, const WCHAR *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return (unsigned short)a[i] < (unsigned short)b[i] ? -1 : 1;
    return 0;
}

/* Numbers: the ASCII prefix of a wide string, parsed by the narrow function. */
static inline size_t objmgr_crt_ascii_prefix(const WCHAR *s, char *out, size_t cap) {
    size_t n = 0;
    while (n + 1 < cap && s[n] && (unsigned short)s[n] < 0x80) {
        out[n] = (char)s[n];
        n++;
    }
    out[n] = 0;
    return n;
}
static inline long objmgr_wcstol(const WCHAR *s, WCHAR **end, int base) {
    char tmp[128], *e;
    objmgr_crt_ascii_prefix(s, tmp, sizeof tmp);
    long v = strtol(tmp, &e, base);
    if (end) *end = (WCHAR *)s + (e - tmp);
    return v;
}
static inline unsigned long objmgr_wcstoul(const WCHAR *s, WCHAR **end, int base) {
    char tmp[128], *e;
    objmgr_crt_ascii_prefix(s, tmp, sizeof tmp);
    unsigned long v = strtoul(tmp, &e, base);
    if (end) *end = (WCHAR *)s + (e - tmp);
    return v;
}
static inline double objmgr_wcstod(const WCHAR *s, WCHAR **end) {
    char tmp[128], *e;
    objmgr_crt_ascii_prefix(s, tmp, sizeof tmp);
    double v = strtod(tmp, &e);
    if (end) *end = (WCHAR *)s + (e - tmp);
    return v;
}
static inline int _wtoi(const WCHAR *s) { return (int)objmgr_wcstol(s, NULL, 10); }
static inline long _wtol(const WCHAR *s) { return objmgr_wcstol(s, NULL, 10); }
static inline double _wtof(const WCHAR *s) { return objmgr_wcstod(s, NULL); }
static inline WCHAR *objmgr_crt_widen_ascii(const char *s, WCHAR *out) {
    size_t i = 0;
    for (; s[i]; i++) out[i] = (WCHAR)(unsigned char)s[i];
    out[i] = 0;
    return out;
}
static inline WCHAR *_itow(int v, WCHAR *buf, int radix) {
    char tmp[72];
    return objmgr_crt_widen_ascii(_itoa(v, tmp, radix), buf);
}
static inline WCHAR *_ltow(long v, WCHAR *buf, int radix) {
    char tmp[72];
    return objmgr_crt_widen_ascii(_ltoa(v, tmp, radix), buf);
}
static inline WCHAR *_ultow(unsigned long v, WCHAR *buf, int radix) {
    char tmp[72];
    return objmgr_crt_widen_ascii(_ultoa(v, tmp, radix), buf);
}
static inline WCHAR *_i64tow(long long v, WCHAR *buf, int radix) {
    char tmp[72];
    return objmgr_crt_widen_ascii(_i64toa(v, tmp, radix), buf);
}

static inline errno_t wcsncpy_s(WCHAR *dst, size_t size, const WCHAR *src, size_t count) {
    if (!dst || size == 0) return EINVAL;
    if (!src) {
        dst[0] = 0;
        return EINVAL;
    }
    size_t n = objmgr_wcsnlen(src, count);
    if (n >= size) {
        if (count == _TRUNCATE) {
            memcpy(dst, src, (size - 1) * sizeof(WCHAR));
            dst[size - 1] = 0;
            return STRUNCATE;
        }
        dst[0] = 0;
        return ERANGE;
    }
    memcpy(dst, src, n * sizeof(WCHAR));
    dst[n] = 0;
    return 0;
}
static inline errno_t wcscpy_s(WCHAR *dst, size_t size, const WCHAR *src) {
    if (!dst || size == 0) return EINVAL;
    if (!src) {
        dst[0] = 0;
        return EINVAL;
    }
    size_t n = objmgr_crt_wlen(src);
    if (n >= size) {
        dst[0] = 0;
        return ERANGE;
    }
    memcpy(dst, src, (n + 1) * sizeof(WCHAR));
    return 0;
}
static inline errno_t wcscat_s(WCHAR *dst, size_t size, const WCHAR *src) {
    if (!dst || size == 0) return EINVAL;
    size_t used = objmgr_wcsnlen(dst, size);
    if (!src || used == size) {
        dst[0] = 0;
        return EINVAL;
    }
    return wcscpy_s(dst + used, size - used, src) == 0 ? 0 : (dst[0] = 0, ERANGE);
}
static inline errno_t _itow_s(int v, WCHAR *buf, size_t size, int radix) {
    char tmp[72];
    WCHAR wide[72];
    if (!buf || size == 0 || radix < 2 || radix > 36) return EINVAL;
    return wcscpy_s(buf, size, objmgr_crt_widen_ascii(_itoa(v, tmp, radix), wide));
}

/* Wide printf: formatted as UTF-16, or written to a stream as UTF-8. */
static inline int objmgr_crt_vprint_wide(WCHAR *buf, size_t count, const WCHAR *fmt, va_list ap, int fit) {
    size_t len = 0;
    char *text = objmgr_crt_vformat_wide(fmt, ap, &len);
    int r = objmgr_crt_store_wide(buf, count, text, len, fit);
    free(text);
    return r;
}
static inline int objmgr_vswprintf(WCHAR *buf, size_t count, const WCHAR *fmt, va_list ap) {
    return objmgr_crt_vprint_wide(buf, count, fmt, ap, OBJMGR_FIT_ISO);
}
static inline int objmgr_swprintf(WCHAR *buf, size_t count, const WCHAR *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = objmgr_vswprintf(buf, count, fmt, ap);
    va_end(ap);
    return r;
}
/* MSVC's legacy swprintf without a count (what _stprintf means with UNICODE). */
static inline int _swprintf(WCHAR *buf, const WCHAR *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = objmgr_vswprintf(buf, (size_t)INT32_MAX, fmt, ap);
    va_end(ap);
    return r;
}
static inline int _vsnwprintf(WCHAR *buf, size_t count, const WCHAR *fmt, va_list ap) {
    return objmgr_crt_vprint_wide(buf, count, fmt, ap, OBJMGR_FIT_LEGACY);
}
static inline int _snwprintf(WCHAR *buf, size_t count, const WCHAR *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = _vsnwprintf(buf, count, fmt, ap);
    va_end(ap);
    return r;
}
static inline int vswprintf_s(WCHAR *buf, size_t size, const WCHAR *fmt, va_list ap) {
    return objmgr_crt_vprint_wide(buf, size, fmt, ap, OBJMGR_FIT_SECURE);
}
static inline int swprintf_s(WCHAR *buf, size_t size, const WCHAR *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vswprintf_s(buf, size, fmt, ap);
    va_end(ap);
    return r;
}
static inline int objmgr_vfwprintf(FILE *stream, const WCHAR *fmt, va_list ap) {
    size_t len = 0;
    char *text = objmgr_crt_vformat_wide(fmt, ap, &len);
    if (!text) return -1;
    int units = (int)objmgr_crt_utf8_to_16(text, len, NULL, 0);
    int r = fwrite(text, 1, len, stream) == len ? units : -1;
    free(text);
    return r;
}
static inline int objmgr_fwprintf(FILE *stream, const WCHAR *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = objmgr_vfwprintf(stream, fmt, ap);
    va_end(ap);
    return r;
}
static inline int objmgr_vwprintf(const WCHAR *fmt, va_list ap) { return objmgr_vfwprintf(stdout, fmt, ap); }
static inline int objmgr_wprintf(const WCHAR *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = objmgr_vfwprintf(stdout, fmt, ap);
    va_end(ap);
    return r;
}
static inline int objmgr_fputws(const WCHAR *s, FILE *stream) {
    char *text = objmgr_crt_narrow(s);
    int r = text && fputs(text, stream) >= 0 ? 0 : -1;
    free(text);
    return r;
}
static inline int _putws(const WCHAR *s) { return objmgr_fputws(s, stdout) == 0 && fputc('\n', stdout) != EOF ? 0 : -1; }
/* UTF-8 to and from WCHAR strings (the C locale's multibyte text is UTF-8 here). */
static inline size_t objmgr_mbstowcs(WCHAR *dst, const char *src, size_t n) {
    size_t len = strlen(src);
    size_t units = objmgr_crt_utf8_to_16(src, len, dst, dst ? n : 0);
    if (dst && units < n) dst[units] = 0;
    return dst && units > n ? n : units;
}
static inline size_t objmgr_wcstombs(char *dst, const WCHAR *src, size_t n) {
    char *text = objmgr_crt_narrow(src);
    if (!text) return (size_t)-1;
    size_t len = strlen(text);
    if (dst) {
        if (len < n) {
            memcpy(dst, text, len + 1);
        } else {
            memcpy(dst, text, n);
            len = n;
        }
    }
    free(text);
    return len;
}
static inline FILE *_wfopen(const WCHAR *name, const WCHAR *mode) {
    char *n = objmgr_crt_narrow(name), *m = objmgr_crt_narrow(mode);
    FILE *f = n && m ? fopen(n, m) : NULL;
    free(n);
    free(m);
    return f;
}
static inline errno_t _wfopen_s(FILE **file, const WCHAR *name, const WCHAR *mode) {
    if (!file || !name || !mode) return EINVAL;
    *file = _wfopen(name, mode);
    return *file ? 0 : errno;
}


static inline int wvsprintfW(LPWSTR buf, LPCWSTR fmt, va_list ap) {
    size_t len = 0;
    char *text = objmgr_crt_vformat_wide(fmt, ap, &len);
    if (!text) return -1;
    size_t units = objmgr_crt_utf8_to_16(text, len, buf, 1023);
    if (units > 1023) units = 1023;
    buf[units] = 0;
    free(text);
    return (int)units;
}
static inline int WINAPIV wsprintfW(LPWSTR buf, LPCWSTR fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = wvsprintfW(buf, fmt, ap);
    va_end(ap);
    return r;
}
static inline DWORD objmgr_format_message_w(DWORD flags, LPCVOID source, DWORD id, DWORD lang, LPWSTR buf, DWORD size,
                                            va_list *args) {
    DWORD_PTR inserts[99] = {0};
    if (args && !(flags & (FORMAT_MESSAGE_ARGUMENT_ARRAY | FORMAT_MESSAGE_IGNORE_INSERTS))) {
        int count = 0;
        /* objmgr's system messages have no inserts: only a message string's
           are read from the va_list. */
        if (flags & FORMAT_MESSAGE_FROM_STRING) OBJMGR_INSERT_COUNT((const WCHAR *)source, count);
        for (int i = 0; i < count; i++) inserts[i] = va_arg(*args, DWORD_PTR);
        flags |= FORMAT_MESSAGE_ARGUMENT_ARRAY;
        args = (va_list *)(void *)inserts;
    }
    return (FormatMessageW)(flags, source, id, lang, buf, size, args);
}
#define FormatMessageW(flags, source, id, lang, buf, size, args) \
    objmgr_format_message_w(flags, source, id, lang, buf, size, args)

#ifdef __cplusplus
template <size_t N> inline errno_t wcscpy_s(WCHAR (&dst)[N], const WCHAR *src) { return wcscpy_s(dst, N, src); }
template <size_t N> inline errno_t wcscat_s(WCHAR (&dst)[N], const WCHAR *src) { return wcscat_s(dst, N, src); }
template <size_t N> inline errno_t wcsncpy_s(WCHAR (&dst)[N], const WCHAR *src, size_t count) {
    return wcsncpy_s(dst, N, src, count);
}
template <size_t N> inline int swprintf_s(WCHAR (&buf)[N], const WCHAR *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = vswprintf_s(buf, N, fmt, ap);
    va_end(ap);
    return r;
}
#endif

/* glibc's names for these work on 4-byte wchar_t: calls go to the above. */
#define wcslen objmgr_wcslen
#define wcsnlen objmgr_wcsnlen
#define wcscpy objmgr_wcscpy
#define wcsncpy objmgr_wcsncpy
#define wcscat objmgr_wcscat
#define wcsncat objmgr_wcsncat
#define wcscmp objmgr_wcscmp
#define wcsncmp objmgr_wcsncmp
#define wcschr objmgr_wcschr
#define wcsrchr objmgr_wcsrchr
#define wcsstr objmgr_wcsstr
#define wcsdup objmgr_wcsdup
#define _wcsdup objmgr_wcsdup
#define wcsicmp _wcsicmp
#define wcsnicmp _wcsnicmp
#define wmemcpy objmgr_wmemcpy
#define wmemmove objmgr_wmemmove
#define wmemset objmgr_wmemset
#define wmemcmp objmgr_wmemcmp
#define wcstol objmgr_wcstol
#define wcstoul objmgr_wcstoul
#define wcstod objmgr_wcstod
#define swprintf objmgr_swprintf
#define vswprintf objmgr_vswprintf
#define wprintf objmgr_wprintf
#define vwprintf objmgr_vwprintf
#define fwprintf objmgr_fwprintf
#define vfwprintf objmgr_vfwprintf
#define fputws objmgr_fputws
#define mbstowcs objmgr_mbstowcs
#define wcstombs objmgr_wcstombs

#endif /* OBJMGR_WIDE_CHAR */

#endif /* OBJMGR_CRT_H */
