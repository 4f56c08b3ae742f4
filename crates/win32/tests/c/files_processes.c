/* Files, file-backed mappings, virtual memory, threads and processes
   (CreateProcess with inherited handles) through the C ABI. */
#include <windows.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include "check.h"

static char self[MAX_PATH];

static void files(void) {
    char dir[MAX_PATH], name[MAX_PATH];
    DWORD n = GetTempPathA(MAX_PATH, dir);
    CHECK(n > 0 && dir[n - 1] == '/');
    CHECK(GetTempPathA(1, dir) == n + 1); /* too small: the size needed */
    GetTempPathA(MAX_PATH, dir);
    CHECK(GetTempFileNameA(dir, "omt", 0, name) != 0);
    HANDLE h = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    CHECK(h != INVALID_HANDLE_VALUE);
    DWORD done = 0;
    CHECK(WriteFile(h, "hello world", 11, &done, NULL) && done == 11);
    CHECK(SetFilePointer(h, 0, NULL, FILE_BEGIN) == 0);
    char buf[16] = {0};
    CHECK(ReadFile(h, buf, 5, &done, NULL) && done == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK(GetFileSize(h, NULL) == 11);
    CHECK_ERR(SetFilePointer(h, -100, NULL, FILE_CURRENT), INVALID_SET_FILE_POINTER, ERROR_NEGATIVE_SEEK);
    /* Without a high part the position must fit 32 bits; on failure it stays. */
    CHECK(SetFilePointer(h, 0x7FFFFFFF, NULL, FILE_BEGIN) == 0x7FFFFFFF);
    CHECK(SetFilePointer(h, 0x7FFFFFFF, NULL, FILE_CURRENT) == 0xFFFFFFFE);
    CHECK_ERR(SetFilePointer(h, 2, NULL, FILE_CURRENT), INVALID_SET_FILE_POINTER, ERROR_INVALID_PARAMETER);
    LONG high = 0;
    CHECK(SetFilePointer(h, 2, &high, FILE_CURRENT) == 0 && high == 1); /* 4 GiB with the high part */
    LARGE_INTEGER to, now;
    to.QuadPart = 4;
    CHECK(SetFilePointerEx(h, to, &now, FILE_BEGIN) && now.QuadPart == 4);
    CHECK(SetEndOfFile(h));
    LARGE_INTEGER size;
    CHECK(GetFileSizeEx(h, &size) && size.QuadPart == 4);
    CHECK(FlushFileBuffers(h));
    /* An OVERLAPPED offset on a synchronous handle: read there, the
       position follows, and the count is recorded. */
    OVERLAPPED at;
    ZeroMemory(&at, sizeof at);
    at.Offset = 1;
    at.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
    CHECK(ReadFile(h, buf, 2, &done, &at) && done == 2 && memcmp(buf, "el", 2) == 0 && at.InternalHigh == 2);
    CHECK(WaitForSingleObject(at.hEvent, 0) == WAIT_OBJECT_0); /* signaled when done */
    CloseHandle(at.hEvent);
    CHECK(SetFilePointer(h, 0, NULL, FILE_CURRENT) == 3);
    CHECK_ERR(CreateFileA(name, GENERIC_READ, 0, NULL, CREATE_NEW, 0, NULL), INVALID_HANDLE_VALUE, ERROR_FILE_EXISTS);
    /* h shares nothing: a second open is a sharing violation. */
    CHECK_ERR(CreateFileA(name, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_ALWAYS, 0, NULL),
              INVALID_HANDLE_VALUE, ERROR_SHARING_VIOLATION);
    CHECK_ERR(DeleteFileA(name), FALSE, ERROR_SHARING_VIOLATION);
    CHECK_ERR(CreateFileA("/nonexistent-dir/x", GENERIC_READ, 0, NULL, OPEN_EXISTING, 0, NULL), INVALID_HANDLE_VALUE,
              ERROR_PATH_NOT_FOUND);
    CHECK_ERR(CreateFileA("/tmp/no-such-file-objmgr", GENERIC_READ, 0, NULL, OPEN_EXISTING, 0, NULL), INVALID_HANDLE_VALUE,
              ERROR_FILE_NOT_FOUND);
    CHECK_ERR(WaitForSingleObject(h, 0), WAIT_FAILED, ERROR_INVALID_HANDLE);

    /* A file-backed mapping larger than the file extends it. */
    HANDLE m = CreateFileMappingA(h, NULL, PAGE_READWRITE, 0, 65536, NULL);
    CHECK(m != NULL);
    CHECK(GetFileSize(h, NULL) == 65536);
    char *view = MapViewOfFile(m, FILE_MAP_WRITE, 0, 0, 0);
    CHECK(view != NULL && memcmp(view, "hell", 4) == 0);
    memcpy(view + 100, "via view", 8);
    CHECK(FlushViewOfFile(view, 0));
    CHECK(SetFilePointer(h, 100, NULL, FILE_BEGIN) == 100);
    CHECK(ReadFile(h, buf, 8, &done, NULL) && memcmp(buf, "via view", 8) == 0);
    MEMORY_BASIC_INFORMATION mbi;
    CHECK(VirtualQuery(view + 5000, &mbi, sizeof mbi) == sizeof mbi);
    CHECK(mbi.Type == MEM_MAPPED && mbi.AllocationBase == view && mbi.State == MEM_COMMIT);
    CHECK(UnmapViewOfFile(view));
    CHECK(CloseHandle(m));
    CHECK(CloseHandle(h));
    CHECK(DeleteFileA(name));
    CHECK_ERR(DeleteFileA(name), FALSE, ERROR_FILE_NOT_FOUND);

    /* An empty file with size 0 cannot be mapped. */
    CHECK(GetTempFileNameA(dir, "omt", 0, name) != 0);
    h = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    CHECK_ERR(CreateFileMappingA(h, NULL, PAGE_READWRITE, 0, 0, NULL), NULL, ERROR_FILE_INVALID);
    CloseHandle(h);
    DeleteFileA(name);
}

static void memory(void) {
    char *p = VirtualAlloc(NULL, 100000, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    CHECK(p != NULL && ((uintptr_t)p % 65536) == 0);
    p[99999] = 1;
    MEMORY_BASIC_INFORMATION mbi;
    CHECK(VirtualQuery(p + 10, &mbi, sizeof mbi) == sizeof mbi);
    CHECK(mbi.BaseAddress == p && mbi.AllocationBase == p && mbi.State == MEM_COMMIT && mbi.Type == MEM_PRIVATE &&
          mbi.Protect == PAGE_READWRITE);
    DWORD old = 0;
    CHECK(VirtualProtect(p, 4096, PAGE_READONLY, &old) && old == PAGE_READWRITE);
    CHECK(VirtualQuery(p, &mbi, sizeof mbi) && mbi.Protect == PAGE_READONLY);
    CHECK_ERR(VirtualProtect(p, 4096, PAGE_READWRITE, NULL), FALSE, ERROR_NOACCESS);
    CHECK(VirtualFree(p, 0, MEM_RELEASE));
    CHECK_ERR(VirtualFree(p, 0, MEM_RELEASE), FALSE, ERROR_INVALID_ADDRESS);
    CHECK_ERR(VirtualAlloc(NULL, 0, MEM_COMMIT, PAGE_READWRITE), NULL, ERROR_INVALID_PARAMETER);
    CHECK_ERR(VirtualAlloc(NULL, (SIZE_T)-32768, MEM_RESERVE, PAGE_READWRITE), NULL, ERROR_NOT_ENOUGH_MEMORY);

    char *r = VirtualAlloc(NULL, 65536, MEM_RESERVE, PAGE_READWRITE);
    CHECK(r != NULL && VirtualQuery(r, &mbi, sizeof mbi) && mbi.State == MEM_RESERVE);
    CHECK(VirtualAlloc(r + 4096, 4096, MEM_COMMIT, PAGE_READWRITE) == r + 4096);
    r[4096] = 7;
    CHECK(VirtualFree(r + 4096, 4096, MEM_DECOMMIT));
    CHECK(VirtualFree(r, 0, MEM_RELEASE));

    /* At a chosen address inside a granule: the allocation starts at the
       granule and reaches the page that holds the last byte asked for. */
    char *where = VirtualAlloc(NULL, 65536, MEM_RESERVE, PAGE_NOACCESS);
    CHECK(where != NULL && VirtualFree(where, 0, MEM_RELEASE));
    char *got = VirtualAlloc(where + 8192, 4096, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    CHECK(got == where);
    if (got) {
        where[8192] = 1;
        where[8192 + 4095] = 2;
        CHECK(VirtualQuery(where + 8192, &mbi, sizeof mbi) && mbi.AllocationBase == where &&
              mbi.State == MEM_COMMIT);
        CHECK(VirtualFree(got, 0, MEM_RELEASE));
    }
}

static DWORD WINAPI returns_seven(LPVOID arg) {
    Sleep(100);
    return (DWORD)(uintptr_t)arg;
}

static DWORD WINAPI exits_nine(LPVOID arg) {
    (void)arg;
    ExitThread(9);
}

static void threads(void) {
    DWORD tid = 0;
    HANDLE t = CreateThread(NULL, 0, returns_seven, (LPVOID)7, 0, &tid);
    CHECK(t != NULL && tid != 0);
    DWORD code = 0;
    CHECK(GetExitCodeThread(t, &code) && code == STILL_ACTIVE);
    CHECK(WaitForSingleObject(t, 10000) == WAIT_OBJECT_0);
    CHECK(GetExitCodeThread(t, &code) && code == 7);
    CloseHandle(t);
    t = CreateThread(NULL, 0, exits_nine, NULL, 0, NULL);
    CHECK(WaitForSingleObject(t, 10000) == WAIT_OBJECT_0);
    CHECK(GetExitCodeThread(t, &code) && code == 9);
    CloseHandle(t);
    t = CreateThread(NULL, 0, returns_seven, (LPVOID)7, CREATE_SUSPENDED, NULL);
    CHECK(t != NULL && WaitForSingleObject(t, 50) == WAIT_TIMEOUT && ResumeThread(t) == 1);
    CHECK(WaitForSingleObject(t, 10000) == WAIT_OBJECT_0 && GetExitCodeThread(t, &code) && code == 7);
    CloseHandle(t);
}

static PROCESS_INFORMATION start_self_args(const char *mode, const char *args, BOOL inherit) {
    char cmd[MAX_PATH * 4];
    snprintf(cmd, sizeof cmd, "\"%s\" %s %s", self, mode, args);
    STARTUPINFOA si;
    ZeroMemory(&si, sizeof si);
    si.cb = sizeof si;
    PROCESS_INFORMATION pi;
    ZeroMemory(&pi, sizeof pi);
    CHECK(CreateProcessA(NULL, cmd, NULL, NULL, inherit, 0, NULL, NULL, &si, &pi));
    return pi;
}

static PROCESS_INFORMATION start_self(const char *mode, HANDLE h, BOOL inherit) {
    char arg[32];
    snprintf(arg, sizeof arg, "%lu", (unsigned long)(uintptr_t)h);
    return start_self_args(mode, arg, inherit);
}

static void processes(void) {
    SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
    HANDLE shared = CreateFileMappingA(INVALID_HANDLE_VALUE, &inherit, PAGE_READWRITE, 0, 4096, NULL);
    HANDLE private_one = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096, NULL);
    char *view = MapViewOfFile(shared, FILE_MAP_ALL_ACCESS, 0, 0, 0);
    strcpy(view, "inherited");

    PROCESS_INFORMATION pi = start_self("child", shared, TRUE);
    CHECK(WaitForSingleObject(pi.hProcess, 20000) == WAIT_OBJECT_0);
    DWORD code = 0;
    CHECK(GetExitCodeProcess(pi.hProcess, &code) && code == 42);
    CHECK(GetExitCodeThread(pi.hThread, &code) && code == 42);
    CHECK(strcmp(view, "ack") == 0);
    CHECK_ERR(TerminateProcess(pi.hProcess, 1), FALSE, ERROR_ACCESS_DENIED);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);

    /* A handle that is not inheritable is not there in the child. */
    pi = start_self("child", private_one, TRUE);
    CHECK(WaitForSingleObject(pi.hProcess, 20000) == WAIT_OBJECT_0);
    CHECK(GetExitCodeProcess(pi.hProcess, &code) && code == ERROR_INVALID_HANDLE);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);

    /* A handle another process closes behind this one's back: once its
       value names a new object (here a section), the old event is not
       found under it by any call. */
    HANDLE me = NULL;
    CHECK(DuplicateHandle(GetCurrentProcess(), GetCurrentProcess(), GetCurrentProcess(), &me,
                          PROCESS_DUP_HANDLE, TRUE, 0));
    HANDLE doomed = CreateEventA(NULL, TRUE, TRUE, NULL);
    CHECK(doomed != NULL && WaitForSingleObject(doomed, 0) == WAIT_OBJECT_0);
    char arg[MAX_PATH * 2];
    snprintf(arg, sizeof arg, "%lu %lu", (unsigned long)(uintptr_t)me, (unsigned long)(uintptr_t)doomed);
    pi = start_self_args("closer", arg, TRUE);
    CHECK(WaitForSingleObject(pi.hProcess, 20000) == WAIT_OBJECT_0);
    CHECK(GetExitCodeProcess(pi.hProcess, &code) && code == 0);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);
    HANDLE made[8] = {0};
    int reused = -1;
    for (int i = 0; i < 8 && reused < 0; i++) {
        made[i] = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096, NULL);
        CHECK(made[i] != NULL);
        if (made[i] == doomed) reused = i;
    }
    CHECK(reused >= 0); /* the lowest free value comes back */
    CHECK_ERR(SetEvent(doomed), FALSE, ERROR_INVALID_HANDLE);
    CHECK_ERR(WaitForSingleObject(doomed, 0), WAIT_FAILED, ERROR_INVALID_HANDLE);
    void *reused_view = MapViewOfFile(doomed, FILE_MAP_READ, 0, 0, 0); /* the section's now */
    CHECK(reused_view != NULL && UnmapViewOfFile(reused_view));
    for (int i = 0; i < 8; i++)
        if (made[i]) CloseHandle(made[i]);
    CloseHandle(me);

    /* TerminateProcess gives the exit code; waits see the exit. */
    pi = start_self("sleep", NULL, FALSE);
    CHECK(GetExitCodeProcess(pi.hProcess, &code) && code == STILL_ACTIVE);
    HANDLE opened = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pi.dwProcessId);
    CHECK(opened != NULL);
    DWORD handle_flags = 9;
    CHECK(GetHandleInformation(opened, &handle_flags) && handle_flags == 0);
    HANDLE inheritable = OpenProcess(SYNCHRONIZE, TRUE, pi.dwProcessId);
    CHECK(inheritable != NULL && GetHandleInformation(inheritable, &handle_flags) &&
          handle_flags == HANDLE_FLAG_INHERIT);
    CloseHandle(inheritable);
    CHECK(TerminateProcess(pi.hProcess, 5));
    CHECK(WaitForSingleObject(opened, 20000) == WAIT_OBJECT_0);
    CHECK(GetExitCodeProcess(opened, &code) && code == 5);
    CHECK_ERR(TerminateProcess(opened, 1), FALSE, ERROR_ACCESS_DENIED); /* no PROCESS_TERMINATE */
    CloseHandle(opened);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);

    STARTUPINFOA si;
    ZeroMemory(&si, sizeof si);
    si.cb = sizeof si;
    char missing[] = "/nonexistent/program";
    CHECK_ERR(CreateProcessA(NULL, missing, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi), FALSE, ERROR_FILE_NOT_FOUND);
    UnmapViewOfFile(view);
    CloseHandle(shared);
    CloseHandle(private_one);
}

/* A thread the library did not start gets a real handle to itself, and its
   ExitThread code reaches whoever waits on it. */
static void *foreign(void *arg) {
    HANDLE *out = arg;
    DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), out, 0, FALSE,
                    DUPLICATE_SAME_ACCESS);
    ExitThread(77);
}

static void foreign_thread(void) {
    pthread_t t;
    HANDLE h = NULL;
    CHECK(pthread_create(&t, NULL, foreign, &h) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(h != NULL);
    CHECK(WaitForSingleObject(h, 5000) == WAIT_OBJECT_0);
    DWORD code = 0;
    CHECK(GetExitCodeThread(h, &code) && code == 77);
    CHECK(CloseHandle(h));
}

/* What a forked child does: one of each kind of call that takes a lock. */
static int use_the_abi(void) {
    HANDLE e = CreateEventA(NULL, TRUE, FALSE, NULL);
    HANDLE m = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 65536, NULL);
    void *view = m ? MapViewOfFile(m, FILE_MAP_ALL_ACCESS, 0, 0, 0) : NULL;
    void *mem = VirtualAlloc(NULL, 65536, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
    int ok = e && m && view && mem && UnmapViewOfFile(view) && VirtualFree(mem, 0, MEM_RELEASE) &&
             CloseHandle(m) && CloseHandle(e);
    return ok ? 0 : 1;
}

static LONG volatile stop_busy;

static DWORD WINAPI busy(LPVOID arg) {
    (void)arg;
    while (!InterlockedCompareExchange(&stop_busy, 0, 0)) use_the_abi();
    return 0;
}

/* fork() while another thread is inside the ABI: every child must be able
   to use it (none may start with a lock held by a thread it lacks). */
static void fork_while_busy(void) {
    HANDLE worker = CreateThread(NULL, 0, busy, NULL, 0, NULL);
    CHECK(worker != NULL);
    int hung = 0, failed = 0;
    for (int i = 0; i < 30; i++) {
        pid_t pid = fork();
        if (pid == 0) _exit(use_the_abi());
        int status = 0, done = 0;
        for (int ms = 0; ms < 10000 && !done; ms++) {
            if (waitpid(pid, &status, WNOHANG) == pid) done = 1;
            else usleep(1000);
        }
        if (!done) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            hung++;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed++;
        }
    }
    InterlockedExchange(&stop_busy, 1);
    CHECK(WaitForSingleObject(worker, 10000) == WAIT_OBJECT_0);
    CHECK(CloseHandle(worker));
    CHECK(hung == 0);
    CHECK(failed == 0);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "child") == 0) {
        HANDLE h = (HANDLE)(uintptr_t)strtoul(argv[2], NULL, 10);
        char *view = MapViewOfFile(h, FILE_MAP_ALL_ACCESS, 0, 0, 0);
        if (view == NULL) return (int)GetLastError();
        if (strcmp(view, "inherited") != 0) return 2;
        strcpy(view, "ack");
        return 42;
    }
    if (argc == 4 && strcmp(argv[1], "closer") == 0) {
        /* Closes the parent's handle argv[3] through its process handle argv[2]. */
        HANDLE parent = (HANDLE)(uintptr_t)strtoul(argv[2], NULL, 10);
        HANDLE victim = (HANDLE)(uintptr_t)strtoul(argv[3], NULL, 10);
        HANDLE copy = NULL;
        if (!DuplicateHandle(parent, victim, GetCurrentProcess(), &copy, 0, FALSE,
                             DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE))
            return (int)GetLastError();
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "sleep") == 0) {
        Sleep(60000);
        return 0;
    }
    CHECK(GetModuleFileNameA(NULL, self, MAX_PATH) > 0);
    files();
    memory();
    threads();
    processes();
    foreign_thread();
    fork_while_busy();
    CHECK_DONE();
}
