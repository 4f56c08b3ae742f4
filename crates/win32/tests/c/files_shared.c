/* Files shared between processes through the C ABI, as Windows programs
   share them: share modes, byte-range locks that another process must
   respect (and wait for), an inherited handle that shares the file
   position, and a mapped file that cannot be cut short. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

static char self[MAX_PATH];

static PROCESS_INFORMATION start(const char *mode, const char *name, HANDLE h, BOOL inherit) {
    char cmd[MAX_PATH * 3];
    snprintf(cmd, sizeof cmd, "\"%s\" %s %s %lu", self, mode, name, (unsigned long)(uintptr_t)h);
    STARTUPINFOA si;
    ZeroMemory(&si, sizeof si);
    si.cb = sizeof si;
    PROCESS_INFORMATION pi;
    ZeroMemory(&pi, sizeof pi);
    CHECK(CreateProcessA(NULL, cmd, NULL, NULL, inherit, 0, NULL, NULL, &si, &pi));
    return pi;
}

static DWORD finish(PROCESS_INFORMATION pi) {
    DWORD code = 99;
    CHECK(WaitForSingleObject(pi.hProcess, 30000) == WAIT_OBJECT_0);
    GetExitCodeProcess(pi.hProcess, &code);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);
    return code;
}

/* The other process: what it may and may not do while the parent holds
   the file. Exit code 0 when every check passed. */
static int other(const char *mode, const char *name, HANDLE inherited) {
    if (strcmp(mode, "contend") == 0) {
        /* The parent writes and shares reading and writing. */
        HANDLE h = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                               OPEN_EXISTING, 0, NULL);
        CHECK(h != INVALID_HANDLE_VALUE);
        /* Refusing to share writing with a writer fails. */
        CHECK_ERR(CreateFileA(name, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL),
                  INVALID_HANDLE_VALUE, ERROR_SHARING_VIOLATION);
        char buf[8];
        DWORD n;
        /* Bytes 0..99 are the parent's, exclusively. */
        CHECK_ERR(ReadFile(h, buf, 4, &n, NULL), FALSE, ERROR_LOCK_VIOLATION);
        OVERLAPPED at;
        ZeroMemory(&at, sizeof at);
        CHECK_ERR(LockFileEx(h, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, 10, 0, &at), FALSE,
                  ERROR_LOCK_VIOLATION);
        at.Offset = 200;
        CHECK(ReadFile(h, buf, 4, &n, &at) && n == 4);
        /* Waits until the parent unlocks (it does once it sees this
           process started). */
        at.Offset = 0;
        CHECK(LockFileEx(h, LOCKFILE_EXCLUSIVE_LOCK, 0, 10, 0, &at));
        CHECK(UnlockFileEx(h, 0, 10, 0, &at));
        CHECK_ERR(UnlockFileEx(h, 0, 10, 0, &at), FALSE, ERROR_NOT_LOCKED);
        CloseHandle(h);
    } else if (strcmp(mode, "inherit") == 0) {
        DWORD n;
        CHECK(WriteFile(inherited, "cd", 2, &n, NULL) && n == 2);
        CloseHandle(inherited);
    } else if (strcmp(mode, "truncate") == 0) {
        HANDLE h = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                               OPEN_EXISTING, 0, NULL);
        CHECK(h != INVALID_HANDLE_VALUE);
        CHECK(SetFilePointer(h, 10, NULL, FILE_BEGIN) == 10);
        CHECK_ERR(SetEndOfFile(h), FALSE, ERROR_USER_MAPPED_FILE);
        CloseHandle(h);
    }
    return check_failures ? 1 : 0;
}

int main(int argc, char **argv) {
    snprintf(self, sizeof self, "%s", argv[0]);
    if (argc > 3) return other(argv[1], argv[2], (HANDLE)(uintptr_t)strtoul(argv[3], NULL, 10));

    char dir[MAX_PATH], name[MAX_PATH];
    GetTempPathA(MAX_PATH, dir);
    CHECK(GetTempFileNameA(dir, "oms", 0, name) != 0);
    HANDLE h = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                           OPEN_EXISTING, 0, NULL);
    CHECK(h != INVALID_HANDLE_VALUE);
    char data[4096];
    memset(data, '.', sizeof data);
    DWORD n;
    CHECK(WriteFile(h, data, sizeof data, &n, NULL));
    CHECK(LockFile(h, 0, 0, 100, 0));
    CHECK_ERR(LockFile(h, 50, 0, 10, 0), FALSE, ERROR_LOCK_VIOLATION); /* own exclusive range */
    PROCESS_INFORMATION c = start("contend", name, NULL, FALSE);
    Sleep(500);
    CHECK(UnlockFile(h, 0, 0, 100, 0));
    CHECK(finish(c) == 0);

    /* A handle the child inherits shares the file position. */
    SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
    HANDLE shared = CreateFileA(name, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit, TRUNCATE_EXISTING,
                                0, NULL);
    CHECK(shared != INVALID_HANDLE_VALUE);
    CHECK(WriteFile(shared, "ab", 2, &n, NULL));
    CHECK(finish(start("inherit", name, shared, TRUE)) == 0);
    CHECK(WriteFile(shared, "ef", 2, &n, NULL));
    CloseHandle(shared);
    char back[8] = {0};
    CHECK(SetFilePointer(h, 0, NULL, FILE_BEGIN) == 0);
    CHECK(ReadFile(h, back, 6, &n, NULL) && n == 6 && memcmp(back, "abcdef", 6) == 0);

    /* A mapping: no process may cut the file short under it; a read-only
       handle cannot back a writable mapping. */
    HANDLE m = CreateFileMappingA(h, NULL, PAGE_READWRITE, 0, 8192, NULL);
    CHECK(m != NULL);
    CHECK(finish(start("truncate", name, NULL, FALSE)) == 0);
    /* Copy-on-write asked of a writable view: its writes stay private. */
    char *view = MapViewOfFile(m, FILE_MAP_WRITE, 0, 0, 4096);
    CHECK(view != NULL);
    DWORD old = 0;
    CHECK(VirtualProtect(view, 4096, PAGE_WRITECOPY, &old));
    view[0] = 'Z';
    char first = 0;
    CHECK(SetFilePointer(h, 0, NULL, FILE_BEGIN) == 0);
    CHECK(ReadFile(h, &first, 1, &n, NULL) && n == 1 && first == 'a');
    CHECK(view[0] == 'Z');
    CHECK(UnmapViewOfFile(view));
    HANDLE reader = CreateFileA(name, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING, 0, NULL);
    CHECK_ERR(CreateFileMappingA(reader, NULL, PAGE_READWRITE, 0, 0, NULL), NULL, ERROR_ACCESS_DENIED);
    HANDLE ro = CreateFileMappingA(reader, NULL, PAGE_READONLY, 0, 0, NULL);
    CHECK(ro != NULL);
    CloseHandle(ro);
    CloseHandle(reader);
    CloseHandle(m);
    CloseHandle(h);
    CHECK(DeleteFileA(name));
    CHECK_DONE();
}
