/* tchar.h for objmgr: generic-text mappings (see windows.h for TCHAR/TEXT). */
#ifndef OBJMGR_TCHAR_H
#define OBJMGR_TCHAR_H
#include <windows.h>
#include <stdio.h>
#include <string.h>

#define _T(s) TEXT(s)
#define _TEXT(s) TEXT(s)

/* Linux starts programs at main with narrow arguments, UNICODE or not. */
#define _tmain main
#ifndef UNICODE
/* The wide C library works on wchar_t (32-bit here), not on UTF-16 TCHARs,
   so only the narrow mappings of the C library functions are provided. */
#define _tprintf printf
#define _ftprintf fprintf
#define _stprintf sprintf
#define _tcslen strlen
#define _tcscpy strcpy
#define _tcscmp strcmp
#define _tcsncpy strncpy
#endif

#endif /* OBJMGR_TCHAR_H */
