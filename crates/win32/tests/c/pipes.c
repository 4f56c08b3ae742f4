/* The classic redirect-the-child's-output pattern, standard handles,
   file facts and moving files, through the C ABI. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include "check.h"

int main(int argc, char **argv) {
    if (argc > 2) {
        /* The child given the pipe's write end by value (inherited). */
        HANDLE out = (HANDLE)(uintptr_t)strtoul(argv[2], NULL, 10);
        DWORD n;
        BOOL ok = WriteFile(out, "by value", 8, &n, NULL) && n == 8;
        CloseHandle(out);
        return ok ? 0 : 1;
    }
    if (argc > 1) {
        /* The child: writes to its standard output (the parent's pipe). */
        HANDLE out = GetStdHandle(STD_OUTPUT_HANDLE);
        DWORD n;
        return WriteFile(out, "from the child", 14, &n, NULL) && n == 14 ? 0 : 1;
    }
    SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
    HANDLE read, write;
    CHECK(CreatePipe(&read, &write, &inherit, 0));
    CHECK(GetFileType(read) == FILE_TYPE_PIPE);
    STARTUPINFOA si;
    ZeroMemory(&si, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdOutput = write;
    si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    CHECK(GetStdHandle(STD_ERROR_HANDLE) == si.hStdError); /* the same handle each time */
    CHECK_ERR(GetStdHandle(7), INVALID_HANDLE_VALUE, ERROR_INVALID_HANDLE);
    PROCESS_INFORMATION pi;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "\"%s\" child", argv[0]);
    CHECK(CreateProcessA(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi));
    CloseHandle(write);
    char buf[64] = {0};
    DWORD n = 0, total = 0;
    while (ReadFile(read, buf + total, sizeof buf - 1 - total, &n, NULL) && n > 0) total += n;
    CHECK(total == 14 && strcmp(buf, "from the child") == 0);
    CHECK(WaitForSingleObject(pi.hProcess, 20000) == WAIT_OBJECT_0);
    DWORD code = 9;
    CHECK(GetExitCodeProcess(pi.hProcess, &code) && code == 0);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);
    CloseHandle(read);

    /* An inheritable pipe end passed by value on the command line. */
    CHECK(CreatePipe(&read, &write, &inherit, 0));
    STARTUPINFOA plain;
    ZeroMemory(&plain, sizeof plain);
    plain.cb = sizeof plain;
    snprintf(cmd, sizeof cmd, "\"%s\" value %lu", argv[0], (unsigned long)(uintptr_t)write);
    CHECK(CreateProcessA(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &plain, &pi));
    CloseHandle(write);
    memset(buf, 0, sizeof buf);
    total = 0;
    while (ReadFile(read, buf + total, sizeof buf - 1 - total, &n, NULL) && n > 0) total += n;
    CHECK(total == 8 && strcmp(buf, "by value") == 0);
    CHECK(WaitForSingleObject(pi.hProcess, 20000) == WAIT_OBJECT_0);
    CHECK(GetExitCodeProcess(pi.hProcess, &code) && code == 0);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);
    CloseHandle(read);

    /* File facts and moves. */
    char dir[MAX_PATH], a[MAX_PATH], b[MAX_PATH];
    GetTempPathA(MAX_PATH, dir);
    CHECK(GetTempFileNameA(dir, "omp", 0, a) != 0);
    CHECK(GetTempFileNameA(dir, "omp", 0, b) != 0);
    CHECK(GetFileAttributesA(dir) & FILE_ATTRIBUTE_DIRECTORY);
    CHECK(GetFileAttributesA(a) == FILE_ATTRIBUTE_NORMAL);
    CHECK_ERR(GetFileAttributesA("/no-such-dir/x"), INVALID_FILE_ATTRIBUTES, ERROR_PATH_NOT_FOUND);
    HANDLE h = CreateFileA(a, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    CHECK(h != INVALID_HANDLE_VALUE);
    CHECK(WriteFile(h, "12345", 5, &n, NULL));
    BY_HANDLE_FILE_INFORMATION info;
    CHECK(GetFileInformationByHandle(h, &info));
    CHECK(info.nFileSizeLow == 5 && info.nNumberOfLinks == 1 && info.dwFileAttributes == FILE_ATTRIBUTE_NORMAL);
    CHECK(info.ftLastWriteTime.dwHighDateTime > 0x01D00000); /* after 2015 */
    CHECK(GetFileType(h) == FILE_TYPE_DISK);
    /* Open without FILE_SHARE_DELETE: it may not move. */
    CHECK_ERR(MoveFileExA(a, b, MOVEFILE_REPLACE_EXISTING), FALSE, ERROR_SHARING_VIOLATION);
    CloseHandle(h);
    CHECK_ERR(MoveFileExA(a, b, 0), FALSE, ERROR_ALREADY_EXISTS);
    CHECK(MoveFileExA(a, b, MOVEFILE_REPLACE_EXISTING));
    CHECK(GetFileAttributesA(a) == INVALID_FILE_ATTRIBUTES);
    CHECK(DeleteFileA(b));
    CHECK_DONE();
}
