/* The UTF-16 (W) and Ex variants, built with UNICODE so that the generic
   names and TEXT() are the wide ones. */
#define UNICODE
#include <windows.h>
#include <string.h>
#include "check.h"

int main(void) {
    HANDLE m = CreateMutexW(NULL, FALSE, TEXT("Local\\w-mutex"));
    CHECK(m != NULL);
    HANDLE m2 = OpenMutexW(SYNCHRONIZE | MUTEX_MODIFY_STATE, FALSE, TEXT("Local\\w-mutex"));
    HANDLE m3 = OpenMutexA(SYNCHRONIZE, FALSE, "Local\\w-mutex");
    HANDLE mx = CreateMutexExW(NULL, TEXT("Local\\w-mutex-ex"), CREATE_MUTEX_INITIAL_OWNER, MUTEX_ALL_ACCESS);
    HANDLE mxa = CreateMutexExA(NULL, NULL, 0, MUTEX_ALL_ACCESS);
    CHECK(m2 && m3 && mx && mxa);
    CHECK(ReleaseMutex(mx)); /* created owned */
    CHECK_ERR(OpenMutexW(SYNCHRONIZE, FALSE, NULL), NULL, ERROR_INVALID_PARAMETER);

    /* Names are exact: two names that differ only in an unpaired surrogate
       (W) or in bytes that are not UTF-8 (A) never meet in one object; such
       names are refused, not replaced by U+FFFD. */
    const WCHAR lone_high[] = {'L', 'o', 'c', 'a', 'l', '\\', 'x', 0xD800, 0};
    const WCHAR lone_low[] = {'L', 'o', 'c', 'a', 'l', '\\', 'x', 0xDC00, 0};
    const WCHAR pair_ok[] = {'L', 'o', 'c', 'a', 'l', '\\', 'x', 0xD83D, 0xDE00, 0};
    CHECK_ERR(CreateMutexW(NULL, FALSE, lone_high), NULL, ERROR_INVALID_NAME);
    CHECK_ERR(CreateEventW(NULL, FALSE, FALSE, lone_low), NULL, ERROR_INVALID_NAME);
    CHECK_ERR(OpenMutexW(SYNCHRONIZE, FALSE, lone_low), NULL, ERROR_INVALID_NAME);
    CHECK_ERR(CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096, lone_high),
              NULL, ERROR_INVALID_NAME);
    HANDLE emoji = CreateMutexW(NULL, FALSE, pair_ok);
    CHECK(emoji != NULL && GetLastError() == 0);
    CHECK(OpenMutexA(SYNCHRONIZE, FALSE, "Local\\x\xF0\x9F\x98\x80") != NULL);
    CHECK_ERR(CreateMutexA(NULL, FALSE, "Local\\x\xFF"), NULL, ERROR_INVALID_NAME);
    CHECK_ERR(CreateMutexA(NULL, FALSE, "Local\\x\xFE"), NULL, ERROR_INVALID_NAME);
    CHECK_ERR(CreateFileA("/tmp/\xFF-objmgr-bad", GENERIC_READ, 0, NULL, OPEN_EXISTING, 0, NULL),
              INVALID_HANDLE_VALUE, ERROR_INVALID_NAME);
    CHECK(CloseHandle(emoji));
    {
        /* Programs, directories and temporary file names too. */
        STARTUPINFOA si;
        PROCESS_INFORMATION pi;
        char bad_cmd[] = "/bin/true\xFF";
        char buf[MAX_PATH];
        memset(&si, 0, sizeof si);
        si.cb = sizeof si;
        CHECK_ERR(CreateProcessA(NULL, bad_cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi),
                  FALSE, ERROR_INVALID_NAME);
        CHECK_ERR(GetTempFileNameA("/tmp", "\xC3", 0, buf), 0, ERROR_INVALID_NAME);
    }

    HANDLE e = CreateEvent(NULL, TRUE, FALSE, TEXT("Local\\w-event"));
    HANDLE ew = OpenEventW(EVENT_MODIFY_STATE, FALSE, TEXT("Local\\w-event"));
    HANDLE ea = OpenEventA(SYNCHRONIZE, FALSE, "Local\\w-event");
    HANDLE ex = CreateEventExW(NULL, TEXT("Local\\w-event"), 0, EVENT_ALL_ACCESS);
    CHECK(e && ew && ea && ex && GetLastError() == ERROR_ALREADY_EXISTS);
    CHECK(SetEvent(ew));
    CHECK(WaitForSingleObjectEx(ea, 0, FALSE) == WAIT_OBJECT_0);

    HANDLE s = CreateSemaphoreW(NULL, 0, 2, TEXT("Local\\w-sem"));
    HANDLE sx = CreateSemaphoreExW(NULL, 1, 2, TEXT("Local\\w-sem"), 0, SEMAPHORE_ALL_ACCESS);
    HANDLE sxa = CreateSemaphoreExA(NULL, 1, 2, NULL, 0, SEMAPHORE_ALL_ACCESS);
    HANDLE so = OpenSemaphoreW(SYNCHRONIZE, FALSE, TEXT("Local\\w-sem"));
    CHECK(s && sx && sxa && so);
    CHECK_ERR(CreateSemaphoreExW(NULL, 1, 2, NULL, 1, SEMAPHORE_ALL_ACCESS), NULL, ERROR_INVALID_PARAMETER);
    HANDLE pair[2] = {so, sxa};
    CHECK(WaitForMultipleObjectsEx(2, pair, FALSE, 0, FALSE) == WAIT_OBJECT_0 + 1);

    HANDLE t = CreateWaitableTimerW(NULL, TRUE, TEXT("Local\\w-timer"));
    HANDLE tx = CreateWaitableTimerExW(NULL, NULL, CREATE_WAITABLE_TIMER_MANUAL_RESET, TIMER_ALL_ACCESS);
    HANDLE txa = CreateWaitableTimerExA(NULL, "Local\\w-timer-a", 0, TIMER_ALL_ACCESS);
    HANDLE to = OpenWaitableTimerW(TIMER_MODIFY_STATE | SYNCHRONIZE, FALSE, TEXT("Local\\w-timer"));
    HANDLE toa = OpenWaitableTimerA(SYNCHRONIZE, FALSE, "Local\\w-timer-a");
    CHECK(t && tx && txa && to && toa);
    LARGE_INTEGER due;
    due.QuadPart = -1;
    CHECK(SetWaitableTimer(to, &due, 0, NULL, NULL, FALSE));
    CHECK(WaitForSingleObject(t, 5000) == WAIT_OBJECT_0);
    CHECK_ERR(SetWaitableTimer(toa, &due, 0, NULL, NULL, FALSE), FALSE, ERROR_ACCESS_DENIED);

    HANDLE map = CreateFileMapping(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096, TEXT("Local\\w-map"));
    CHECK(map != NULL);

    WCHAR dir[MAX_PATH], name[MAX_PATH], exe[MAX_PATH];
    CHECK(GetTempPath(MAX_PATH, dir) > 0);
    CHECK(GetTempFileName(dir, TEXT("omw"), 0, name) != 0);
    HANDLE f = CreateFile(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    CHECK(f != INVALID_HANDLE_VALUE && GetLastError() == ERROR_ALREADY_EXISTS);
    CloseHandle(f);
    CHECK(DeleteFile(name));
    CHECK(GetModuleFileName(NULL, exe, MAX_PATH) > 0);
    CHECK(MessageBox(NULL, TEXT("wide text"), TEXT("Wide"), MB_OK) == IDOK);

    /* CreateProcessW: run this program's sibling `true`-like behaviour: /bin/sh -c "exit 3". */
    STARTUPINFO si;
    ZeroMemory(&si, sizeof si);
    si.cb = sizeof si;
    PROCESS_INFORMATION pi;
    WCHAR cmd[] = u"/bin/sh -c \"exit 3\"";
    CHECK(CreateProcess(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi));
    CHECK(WaitForSingleObject(pi.hProcess, 20000) == WAIT_OBJECT_0);
    DWORD code = 0;
    CHECK(GetExitCodeProcess(pi.hProcess, &code) && code == 3);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);

    SYSTEM_INFO si2;
    GetNativeSystemInfo(&si2);
    CHECK(si2.dwAllocationGranularity == 65536);
    CHECK(GetCurrentThread() == (HANDLE)(LONG_PTR)-2);
    CHECK(GetExitCodeThread(GetCurrentThread(), &code) && code == STILL_ACTIVE);

    HANDLE all[] = {m, m2, m3, mx, mxa, e, ew, ea, ex, s, sx, sxa, so, t, tx, txa, to, toa, map};
    for (unsigned i = 0; i < sizeof all / sizeof all[0]; i++) CHECK(CloseHandle(all[i]));
    CHECK_DONE();
}
