/*
 * tchar.h for objmgr: generic-text mappings, narrow or (with UNICODE or
 * _UNICODE) wide, as in the Windows SDK. Wide builds need a 2-byte wchar_t
 * (-fshort-wchar, from `pkg-config --cflags objmgr-win32`).
 */
#ifndef OBJMGR_TCHAR_H
#define OBJMGR_TCHAR_H
#if defined(_UNICODE) && !defined(UNICODE)
#define UNICODE
#endif
#if defined(UNICODE) && !defined(_UNICODE)
#define _UNICODE
#endif
#include <windows.h>

#define _T(s) TEXT(s)
#define _TEXT(s) TEXT(s)
typedef TCHAR _TCHAR;
typedef TCHAR _TSCHAR;
typedef TCHAR _TXCHAR;

#ifdef UNICODE
#define _tprintf wprintf
#define _ftprintf fwprintf
#define _vtprintf vwprintf
#define _vftprintf vfwprintf
#define _stprintf _swprintf
#define _stprintf_s swprintf_s
#define _sntprintf _snwprintf
#define _vstprintf_s vswprintf_s
#define _vsntprintf _vsnwprintf
#define _tcslen wcslen
#define _tcsnlen wcsnlen
#define _tcscpy wcscpy
#define _tcscpy_s wcscpy_s
#define _tcsncpy wcsncpy
#define _tcsncpy_s wcsncpy_s
#define _tcscat wcscat
#define _tcscat_s wcscat_s
#define _tcsncat wcsncat
#define _tcscmp wcscmp
#define _tcsncmp wcsncmp
#define _tcsicmp _wcsicmp
#define _tcsnicmp _wcsnicmp
#define _tcschr wcschr
#define _tcsrchr wcsrchr
#define _tcsstr wcsstr
#define _tcsdup _wcsdup
#define _tcslwr _wcslwr
#define _tcsupr _wcsupr
#define _tcstol wcstol
#define _tcstoul wcstoul
#define _tcstod wcstod
#define _ttoi _wtoi
#define _ttol _wtol
#define _tstoi _wtoi
#define _tstof _wtof
#define _itot _itow
#define _itot_s _itow_s
#define _ltot _ltow
#define _fputts fputws
#define _putts _putws
#define _tfopen _wfopen
#define _tfopen_s _wfopen_s

/* _tmain is wmain, with UTF-16 arguments. Linux starts programs at main:
   this defines a main that converts argv (UTF-8) and calls the program's
   wmain. Write `int _tmain(int argc, TCHAR *argv[])` (or wmain) once, as a
   definition, as Windows programs do. */
#ifdef __cplusplus
extern "C" int objmgr_run_wmain(int argc, char **argv, int (*wmain_with_args)(int, WCHAR **),
                                int (*wmain_without_args)(void));
#define wmain                                                                                   \
    objmgr_wmain(int, WCHAR **) __attribute__((weak));                                          \
    int objmgr_wmain() __attribute__((weak));                                                   \
    int main(int argc, char **argv) {                                                           \
        int (*with_args)(int, WCHAR **) = objmgr_wmain;                                         \
        int (*without_args)() = objmgr_wmain;                                                   \
        return objmgr_run_wmain(argc, argv, with_args, without_args);                           \
    }                                                                                           \
    int objmgr_wmain
#else
int objmgr_run_wmain(int argc, char **argv, int (*wmain_with_args)(int, WCHAR **),
                     int (*wmain_without_args)(void));
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 202311L
/* C23: `()` means no arguments, so _tmain must be defined with them:
   `int _tmain(int argc, TCHAR *argv[])`. */
#define wmain                                                                                   \
    objmgr_wmain(int, WCHAR **);                                                                \
    int main(int argc, char **argv) { return objmgr_run_wmain(argc, argv, objmgr_wmain, NULL); } \
    int objmgr_wmain
#else
/* Declared without a prototype so that `int _tmain()` and
   `int _tmain(int argc, TCHAR *argv[])` both define it; called with both
   arguments, which a function that takes none ignores. */
#define wmain                                                                                   \
    objmgr_wmain();                                                                             \
    int main(int argc, char **argv) {                                                           \
        return objmgr_run_wmain(argc, argv, (int (*)(int, WCHAR **))objmgr_wmain, NULL);        \
    }                                                                                           \
    int objmgr_wmain
#endif
#endif
#define _tmain wmain
#else
#define _tprintf printf
#define _ftprintf fprintf
#define _vtprintf vprintf
#define _vftprintf vfprintf
#define _stprintf sprintf
#define _stprintf_s sprintf_s
#define _sntprintf _snprintf
#define _vstprintf_s vsprintf_s
#define _vsntprintf _vsnprintf
#define _tcslen strlen
#define _tcsnlen strnlen
#define _tcscpy strcpy
#define _tcscpy_s strcpy_s
#define _tcsncpy strncpy
#define _tcsncpy_s strncpy_s
#define _tcscat strcat
#define _tcscat_s strcat_s
#define _tcsncat strncat
#define _tcscmp strcmp
#define _tcsncmp strncmp
#define _tcsicmp _stricmp
#define _tcsnicmp _strnicmp
#define _tcschr strchr
#define _tcsrchr strrchr
#define _tcsstr strstr
#define _tcsdup _strdup
#define _tcslwr _strlwr
#define _tcsupr _strupr
#define _tcstol strtol
#define _tcstoul strtoul
#define _tcstod strtod
#define _ttoi atoi
#define _ttol atol
#define _tstoi atoi
#define _tstof atof
#define _itot _itoa
#define _itot_s _itoa_s
#define _ltot _ltoa
#define _fputts fputs
#define _putts puts
#define _tfopen fopen
#define _tfopen_s fopen_s
/* Linux starts programs at main with narrow arguments. */
#define _tmain main
#endif

#endif /* OBJMGR_TCHAR_H */
