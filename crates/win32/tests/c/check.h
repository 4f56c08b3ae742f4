/* Tiny assertion helpers for the C tests: a failed CHECK prints where and
   what, and the program exits 1 at the end. */
#ifndef CHECK_H
#define CHECK_H
#include <stdio.h>
#include <windows.h>

static int check_failures;

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: CHECK failed: %s (GetLastError %lu)\n", __FILE__, __LINE__, #cond, \
            (unsigned long)GetLastError()); check_failures++; } } while (0)

/* The call fails and GetLastError is `code`. */
#define CHECK_ERR(call, failed, code) do { SetLastError(0xDEAD); \
    if (!((call) == (failed))) { fprintf(stderr, "%s:%d: %s did not fail\n", __FILE__, __LINE__, #call); check_failures++; } \
    else if (GetLastError() != (DWORD)(code)) { fprintf(stderr, "%s:%d: %s: GetLastError %lu, expected %lu\n", \
        __FILE__, __LINE__, #call, (unsigned long)GetLastError(), (unsigned long)(code)); check_failures++; } } while (0)

#define CHECK_DONE() do { if (check_failures) { fprintf(stderr, "%d checks failed\n", check_failures); return 1; } \
    printf("all checks passed\n"); return 0; } while (0)
#endif
