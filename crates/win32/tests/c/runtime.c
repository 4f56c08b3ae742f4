/* What Windows sources call besides the objects: the C runtime's wide and
   secure functions, in-process locks, the environment, modules, heaps,
   messages. Built as a UNICODE program with _tmain, as C and as C++. */
#define UNICODE
#include <windows.h>
#include <tchar.h>
#include <stdio.h>
#include <string.h>
#include "check.h"

static CRITICAL_SECTION lock;
static LONG counter;
static SRWLOCK rw = SRWLOCK_INIT;
static CONDITION_VARIABLE ready = CONDITION_VARIABLE_INIT;
static int items;
static INIT_ONCE once = INIT_ONCE_STATIC_INIT;
static LONG init_calls;

static DWORD WINAPI add_many(LPVOID unused) {
    (void)unused;
    for (int i = 0; i < 100000; i++) {
        EnterCriticalSection(&lock);
        EnterCriticalSection(&lock); /* recursive */
        counter++;
        LeaveCriticalSection(&lock);
        LeaveCriticalSection(&lock);
    }
    return 0;
}

static DWORD WINAPI try_from_other_thread(LPVOID unused) {
    (void)unused;
    return TryEnterCriticalSection(&lock) ? 1 : 0;
}

static DWORD WINAPI try_shared(LPVOID unused) {
    (void)unused;
    BOOLEAN got = TryAcquireSRWLockShared(&rw);
    if (got) ReleaseSRWLockShared(&rw);
    return got;
}

static DWORD WINAPI produce(LPVOID unused) {
    (void)unused;
    Sleep(50);
    EnterCriticalSection(&lock);
    items = 3;
    LeaveCriticalSection(&lock);
    WakeAllConditionVariable(&ready);
    return 0;
}

static BOOL CALLBACK init_fn(PINIT_ONCE o, PVOID parameter, PVOID *context) {
    (void)o;
    InterlockedIncrement(&init_calls);
    Sleep(20);
    *context = parameter;
    return TRUE;
}

static DWORD WINAPI run_once(LPVOID parameter) {
    PVOID context = NULL;
    BOOL ok = InitOnceExecuteOnce(&once, init_fn, parameter, &context);
    return ok && context == (PVOID)(ULONG_PTR)0x1230 ? 1 : 0;
}

static DWORD format_with(LPCTSTR format, ...) {
    TCHAR buf[128];
    va_list args;
    va_start(args, format);
    DWORD n = FormatMessage(FORMAT_MESSAGE_FROM_STRING, format, 0, 0, buf, 128, &args);
    va_end(args);
    return n && _tcscmp(buf, TEXT("job 7 of worker")) == 0 ? n : 0;
}

int _tmain(int argc, TCHAR *argv[]) {
    TCHAR buf[64];
    char narrow[16];

    /* The program's arguments, as UTF-16. */
    CHECK(argc == 2 && _tcscmp(argv[1], TEXT("h\u00e9llo")) == 0);
    CHECK(_tcsstr(GetCommandLine(), TEXT("h\u00e9llo")) != NULL);

    /* Wide strings are 2-byte WCHARs, and L"" literals are WCHAR strings. */
    CHECK(sizeof(WCHAR) == 2 && sizeof(L'x') == 2);
    CHECK(wcslen(L"h\u00e9llo") == 5);
    wcscpy(buf, L"Global\\");
    wcscat(buf, L"Name");
    CHECK(wcscmp(buf, L"Global\\Name") == 0 && _wcsicmp(buf, L"GLOBAL\\name") == 0);
    CHECK(wcschr(buf, L'\\') == buf + 6 && wcsstr(buf, L"Na") == buf + 7 && wcsrchr(buf, L'x') == NULL);
    CHECK(_wtoi(L"-42") == -42 && _ttoi(TEXT("17")) == 17);
    WCHAR *end = NULL;
    CHECK(wcstol(L"0x1fz", &end, 16) == 0x1f && *end == L'z');
    CHECK(wcscmp(_itow(255, buf, 16), L"ff") == 0);

    /* MSVC's printf rules: %s is wide in the wide functions, %hs narrow. */
    CHECK(swprintf(buf, 64, L"%s|%hs|%S|%d|%5.1f|%I64d|%c", L"w\u00e9", "n", "S", 42, 2.25, (long long)1 << 40, L'z') > 0);
    CHECK(wcscmp(buf, L"w\u00e9|n|S|42|  2.2|1099511627776|z") == 0 ||
          wcscmp(buf, L"w\u00e9|n|S|42|  2.3|1099511627776|z") == 0);
    CHECK(_stprintf_s(buf, 64, TEXT("%-4s|%04x|%%"), TEXT("ab"), 0x2a) == 11);
    CHECK(_tcscmp(buf, TEXT("ab  |002a|%")) == 0);
    CHECK(_snwprintf(buf, 3, L"%s", L"abc") == 3 && buf[2] == L'c'); /* exactly full: no NUL */
    CHECK(_snwprintf(buf, 3, L"%s", L"abcd") == -1);
    CHECK(swprintf_s(buf, 4, L"%s", L"toolong") == -1 && buf[0] == 0);
    CHECK(wprintf(L"wide out: %s\n", L"h\u00e9llo w\u00f6rld") == 22);

    /* The secure and MSVC-named narrow functions. */
    CHECK(sprintf_s(narrow, sizeof narrow, "%s-%I64u", "id", (unsigned long long)12345) == 8);
    CHECK(strcmp(narrow, "id-12345") == 0);
    CHECK(sprintf_s(narrow, 4, "%s", "toolong") == -1 && narrow[0] == 0);
    CHECK(strcpy_s(narrow, 4, "toolong") == ERANGE && narrow[0] == 0);
    CHECK(strncpy_s(narrow, 4, "toolong", _TRUNCATE) == STRUNCATE && strcmp(narrow, "too") == 0);
    CHECK(strcpy_s(narrow, sizeof narrow, "ab") == 0 && strcat_s(narrow, sizeof narrow, "cd") == 0);
    CHECK(strcmp(narrow, "abcd") == 0 && _stricmp("ABcd", narrow) == 0);
    CHECK(_snprintf(narrow, 4, "%s", "abcd") == 4 && memcmp(narrow, "abcd", 4) == 0);
    CHECK(strcmp(_itoa(-15, narrow, 10), "-15") == 0 && strcmp(_itoa(255, narrow, 16), "ff") == 0);
    CHECK(_snprintf(NULL, 0, "%s-%d", "abc", 12) == 6); /* the length, asked for */
    CHECK(_snprintf_s(narrow, sizeof narrow, 3, "%s", "abcdefgh") == -1 && strcmp(narrow, "abc") == 0);
    CHECK(_snprintf_s(narrow, 4, _TRUNCATE, "%s", "abcdefgh") == -1 && strcmp(narrow, "abc") == 0);
    CHECK(_snprintf_s(narrow, sizeof narrow, _TRUNCATE, "%s", "ab") == 2 && strcmp(narrow, "ab") == 0);
    LONG negative = -5;
    DWORD big = 4000000000u;
    CHECK(sprintf_s(narrow, sizeof narrow, "%ld|%lu", negative, big) > 0 && strcmp(narrow, "-5|4000000000") == 0);
    CHECK(_countof(buf) == 64);

    /* Critical sections: mutual exclusion, recursion, try from another thread. */
    InitializeCriticalSection(&lock);
    HANDLE threads[4];
    for (int i = 0; i < 2; i++) threads[i] = CreateThread(NULL, 0, add_many, NULL, 0, NULL);
    CHECK(WaitForMultipleObjects(2, threads, TRUE, 30000) == WAIT_OBJECT_0);
    CHECK(counter == 200000);
    for (int i = 0; i < 2; i++) CloseHandle(threads[i]);
    EnterCriticalSection(&lock);
    DWORD code = 99;
    HANDLE t = CreateThread(NULL, 0, try_from_other_thread, NULL, 0, NULL);
    CHECK(WaitForSingleObject(t, 10000) == WAIT_OBJECT_0 && GetExitCodeThread(t, &code) && code == 0);
    CloseHandle(t);
    CHECK(TryEnterCriticalSection(&lock)); /* the owner may enter again */
    LeaveCriticalSection(&lock);
    LeaveCriticalSection(&lock);

    /* Slim reader/writer locks. */
    AcquireSRWLockShared(&rw);
    t = CreateThread(NULL, 0, try_shared, NULL, 0, NULL);
    CHECK(WaitForSingleObject(t, 10000) == WAIT_OBJECT_0 && GetExitCodeThread(t, &code) && code == 1);
    CloseHandle(t);
    CHECK(!TryAcquireSRWLockExclusive(&rw));
    ReleaseSRWLockShared(&rw);
    AcquireSRWLockExclusive(&rw);
    t = CreateThread(NULL, 0, try_shared, NULL, 0, NULL);
    CHECK(WaitForSingleObject(t, 10000) == WAIT_OBJECT_0 && GetExitCodeThread(t, &code) && code == 0);
    CloseHandle(t);
    ReleaseSRWLockExclusive(&rw);
    CHECK(TryAcquireSRWLockExclusive(&rw));
    ReleaseSRWLockExclusive(&rw);

    /* Condition variables: a timeout, then a wake from a producer. */
    EnterCriticalSection(&lock);
    CHECK_ERR(SleepConditionVariableCS(&ready, &lock, 10), FALSE, ERROR_TIMEOUT);
    t = CreateThread(NULL, 0, produce, NULL, 0, NULL);
    while (items == 0) CHECK(SleepConditionVariableCS(&ready, &lock, 10000) || GetLastError() == ERROR_TIMEOUT);
    CHECK(items == 3);
    LeaveCriticalSection(&lock);
    WaitForSingleObject(t, 10000);
    CloseHandle(t);
    DeleteCriticalSection(&lock);

    /* One-time initialization: one call, whoever asks. */
    for (int i = 0; i < 4; i++) threads[i] = CreateThread(NULL, 0, run_once, (LPVOID)(ULONG_PTR)0x1230, 0, NULL);
    CHECK(WaitForMultipleObjects(4, threads, TRUE, 30000) == WAIT_OBJECT_0);
    for (int i = 0; i < 4; i++) {
        CHECK(GetExitCodeThread(threads[i], &code) && code == 1);
        CloseHandle(threads[i]);
    }
    CHECK(init_calls == 1);

    /* The environment. */
    CHECK(SetEnvironmentVariable(TEXT("OBJMGR_TEST_VAR"), TEXT("v\u00e4lue")));
    CHECK(GetEnvironmentVariable(TEXT("OBJMGR_TEST_VAR"), buf, 64) == 5 && _tcscmp(buf, TEXT("v\u00e4lue")) == 0);
    CHECK(GetEnvironmentVariable(TEXT("OBJMGR_TEST_VAR"), buf, 3) == 6); /* the size needed */
    CHECK(ExpandEnvironmentStrings(TEXT("[%OBJMGR_TEST_VAR%|%OBJMGR_UNSET_VAR%]"), buf, 64) == 27);
    CHECK(_tcscmp(buf, TEXT("[v\u00e4lue|%OBJMGR_UNSET_VAR%]")) == 0);
    CHECK(SetEnvironmentVariable(TEXT("OBJMGR_TEST_VAR"), NULL));
    CHECK_ERR(GetEnvironmentVariable(TEXT("OBJMGR_TEST_VAR"), buf, 64), 0, ERROR_ENVVAR_NOT_FOUND);
    CHECK_ERR(SetEnvironmentVariableA("A=B", "x"), FALSE, ERROR_INVALID_PARAMETER);

    /* Modules: the system libraries are this one; others by file name. */
    HMODULE kernel32 = GetModuleHandle(TEXT("kernel32.dll"));
    CHECK(kernel32 != NULL);
    typedef HANDLE (WINAPI *create_event_fn)(LPSECURITY_ATTRIBUTES, BOOL, BOOL, LPCWSTR);
    create_event_fn create = (create_event_fn)GetProcAddress(kernel32, "CreateEventW");
    CHECK(create != NULL);
    if (create) {
        HANDLE e = create(NULL, TRUE, TRUE, NULL);
        CHECK(e != NULL && WaitForSingleObject(e, 0) == WAIT_OBJECT_0);
        CloseHandle(e);
    }
    CHECK_ERR(GetProcAddress(kernel32, "NoSuchFunction"), NULL, ERROR_PROC_NOT_FOUND);
    CHECK_ERR(LoadLibrary(TEXT("objmgr-no-such-library.dll")), NULL, ERROR_MOD_NOT_FOUND);
    HMODULE libm = LoadLibraryA("libm.so.6");
    CHECK(libm != NULL);
    if (libm) {
        typedef double (*unary)(double);
        unary floor_fn = (unary)GetProcAddress(libm, "floor");
        CHECK(floor_fn != NULL && floor_fn(2.5) == 2.0);
        CHECK(FreeLibrary(libm));
    }

    /* Heaps: exact sizes, zeroed growth. */
    BYTE *p = (BYTE *)HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, 10);
    CHECK(p != NULL && p[9] == 0 && HeapSize(GetProcessHeap(), 0, p) == 10);
    p = (BYTE *)HeapReAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, p, 100);
    CHECK(p != NULL && p[99] == 0 && HeapSize(GetProcessHeap(), 0, p) == 100);
    CHECK(HeapFree(GetProcessHeap(), 0, p));
    HGLOBAL g = GlobalAlloc(GHND, 33);
    CHECK(g != NULL && GlobalSize(g) == 33 && ((BYTE *)GlobalLock(g))[32] == 0);
    GlobalUnlock(g);
    CHECK(GlobalFree(g) == NULL);
    HLOCAL l = LocalAlloc(LPTR, 7);
    CHECK(l != NULL && LocalSize(l) == 7 && LocalFree(l) == NULL);

    /* lstr* and wsprintf. */
    CHECK(lstrlen(TEXT("abc")) == 3 && lstrlen(NULL) == 0);
    lstrcpyn(buf, TEXT("abcdef"), 4);
    CHECK(lstrcmp(buf, TEXT("abc")) == 0 && lstrcmpi(buf, TEXT("ABC")) == 0 && lstrcmp(buf, TEXT("abd")) < 0);
    CHECK(wsprintf(buf, TEXT("%s=%u"), TEXT("n"), 5u) == 3 && lstrcmp(buf, TEXT("n=5")) == 0);

    /* Messages: objmgr's text for a code, inserts from a va_list or an array. */
    LPTSTR message = NULL;
    CHECK(FormatMessage(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_IGNORE_INSERTS,
                        NULL, ERROR_ACCESS_DENIED, MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), (LPTSTR)&message, 0,
                        NULL) == 19);
    CHECK(message && _tcscmp(message, TEXT("Access is denied.\r\n")) == 0);
    LocalFree(message);
    CHECK_ERR(FormatMessage(FORMAT_MESSAGE_FROM_SYSTEM, NULL, 0x20001234, 0, buf, 64, NULL), 0, ERROR_MR_MID_NOT_FOUND);
    CHECK(format_with(TEXT("job %1!d! of %2"), 7, TEXT("worker")) == 15);
    DWORD_PTR inserts[] = {(DWORD_PTR)TEXT("x"), 3};
    CHECK(FormatMessage(FORMAT_MESSAGE_FROM_STRING | FORMAT_MESSAGE_ARGUMENT_ARRAY, TEXT("%1:%2!02u!%n"), 0, 0, buf, 64,
                        (va_list *)inserts) == 6);
    CHECK(_tcscmp(buf, TEXT("x:03\r\n")) == 0);
    CHECK_ERR(FormatMessage(FORMAT_MESSAGE_FROM_STRING, TEXT("too long for this"), 0, 0, buf, 4, NULL), 0,
              ERROR_INSUFFICIENT_BUFFER);

    /* Handles and pointers as integers. */
    HANDLE h = ULongToHandle(0x1234);
    CHECK(HandleToULong(h) == 0x1234 && PtrToUlong(UlongToPtr(7)) == 7 && LOWORD(0x12345678) == 0x5678 &&
          HIWORD(0x12345678) == 0x1234 && MAKELONG(1, 2) == 0x20001);

    /* Time: FILETIME and SYSTEMTIME agree, and round-trip. */
    FILETIME ft, back;
    SYSTEMTIME st;
    GetSystemTimeAsFileTime(&ft);
    CHECK(FileTimeToSystemTime(&ft, &st) && st.wYear >= 2024 && st.wMonth >= 1 && st.wMonth <= 12);
    CHECK(SystemTimeToFileTime(&st, &back) && CompareFileTime(&back, &ft) <= 0);
    SYSTEMTIME leap = {2024, 2, 0, 29, 12, 30, 15, 250};
    CHECK(SystemTimeToFileTime(&leap, &back) && FileTimeToSystemTime(&back, &st));
    CHECK(st.wYear == 2024 && st.wMonth == 2 && st.wDay == 29 && st.wDayOfWeek == 4 && st.wMilliseconds == 250);
    leap.wDay = 30;
    CHECK_ERR(SystemTimeToFileTime(&leap, &back), FALSE, ERROR_INVALID_PARAMETER);
    GetLocalTime(&st);
    CHECK(st.wYear >= 2024);

    /* Names. */
    DWORD size = 64;
    CHECK(GetComputerName(buf, &size) && size == (DWORD)_tcslen(buf) && size > 0);
    size = 1;
    CHECK_ERR(GetComputerName(buf, &size), FALSE, ERROR_BUFFER_OVERFLOW);
    CHECK(size > 1);
    size = 64;
    CHECK(GetUserName(buf, &size) && size == (DWORD)_tcslen(buf) + 1);
    CHECK(GetProcessId(GetCurrentProcess()) == GetCurrentProcessId());
    OutputDebugString(TEXT("debug output\n"));

    /* Directories. */
    TCHAR cwd[MAX_PATH], dir[MAX_PATH];
    DWORD n = GetCurrentDirectory(MAX_PATH, cwd);
    CHECK(n > 0 && n == (DWORD)_tcslen(cwd) && GetCurrentDirectory(1, dir) == n + 1);
    _stprintf_s(dir, MAX_PATH, TEXT("/tmp/objmgr-runtime-%lu"), (unsigned long)GetCurrentProcessId());
    CHECK(CreateDirectory(dir, NULL));
    CHECK_ERR(CreateDirectory(dir, NULL), FALSE, ERROR_ALREADY_EXISTS);
    CHECK(SetCurrentDirectory(dir) && GetCurrentDirectory(MAX_PATH, buf) && _tcscmp(buf, dir) == 0);
    CHECK(SetCurrentDirectory(cwd));
    CHECK(RemoveDirectory(dir));
    CHECK_ERR(RemoveDirectory(dir), FALSE, ERROR_FILE_NOT_FOUND);

    /* Processors. */
    DWORD_PTR mask = 0, system = 0;
    CHECK(GetProcessAffinityMask(GetCurrentProcess(), &mask, &system) && mask != 0 && (mask & ~system) == 0);
    CHECK(GetCurrentProcessorNumber() < 8 * sizeof(DWORD_PTR));
    DWORD_PTR first = mask & (~mask + 1);
    CHECK(SetThreadAffinityMask(GetCurrentThread(), first) == mask);
    CHECK(GetCurrentProcessorNumber() == (DWORD)__builtin_ctzll(first));
    CHECK(SetThreadAffinityMask(GetCurrentThread(), mask) == first);
    CHECK_ERR(SetProcessAffinityMask(GetCurrentProcess(), 0), FALSE, ERROR_INVALID_PARAMETER);

    CHECK_DONE();
}
