/* Two processes sharing a journal file through a file mapping, written as
   a Windows program is: the writer creates the file with CreateFile (share
   mode: readers only), sizes it, maps it by name and appends wide records;
   the reader opens the mapping by name, waits for the writer's event and
   prints the records. Errors are reported with FormatMessage. Run without
   arguments it is the writer and starts the reader itself. */
#define UNICODE
#define _UNICODE
#include <windows.h>
#include <tchar.h>
#include <stdio.h>

#define RECORDS 16
#define RECORD_CHARS 48

typedef struct {
    LONG count;
    WCHAR records[RECORDS][RECORD_CHARS];
} JOURNAL;

static void ReportError(LPCTSTR what) {
    LPTSTR message = NULL;
    DWORD code = GetLastError();
    FormatMessage(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_IGNORE_INSERTS, NULL,
                  code, MAKELANGID(LANG_NEUTRAL, SUBLANG_DEFAULT), (LPTSTR)&message, 0, NULL);
    _ftprintf(stderr, TEXT("%s failed with error %lu: %s"), what, code, message ? message : TEXT("?\n"));
    LocalFree(message);
}

static int Reader(void) {
    HANDLE ready = OpenEvent(SYNCHRONIZE, FALSE, TEXT("Local\\FileJournalDemo.ready"));
    HANDLE mapping = OpenFileMapping(FILE_MAP_READ, FALSE, TEXT("Local\\FileJournalDemo"));
    if (!ready || !mapping) {
        ReportError(TEXT("opening the journal"));
        return 2;
    }
    if (WaitForSingleObject(ready, 30000) != WAIT_OBJECT_0) return 3;
    const JOURNAL *journal = (const JOURNAL *)MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0);
    if (!journal) {
        ReportError(TEXT("MapViewOfFile"));
        return 4;
    }
    for (LONG i = 0; i < journal->count; i++) _tprintf(TEXT("read: %s\n"), journal->records[i]);
    LONG count = journal->count;
    UnmapViewOfFile(journal);
    CloseHandle(mapping);
    CloseHandle(ready);
    return count == RECORDS ? 0 : 5;
}

int _tmain(int argc, TCHAR *argv[]) {
    if (argc > 1 && lstrcmpi(argv[1], TEXT("reader")) == 0) return Reader();

    TCHAR dir[MAX_PATH], path[MAX_PATH];
    GetTempPath(MAX_PATH, dir);
    if (!GetTempFileName(dir, TEXT("jnl"), 0, path)) {
        ReportError(TEXT("GetTempFileName"));
        return 1;
    }
    HANDLE file = CreateFile(path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ, NULL, CREATE_ALWAYS,
                             FILE_ATTRIBUTE_TEMPORARY | FILE_FLAG_DELETE_ON_CLOSE, NULL);
    if (file == INVALID_HANDLE_VALUE) {
        ReportError(TEXT("CreateFile"));
        return 1;
    }
    /* Nobody else may write while we own the journal. */
    HANDLE intruder = CreateFile(path, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                                 OPEN_EXISTING, 0, NULL);
    if (intruder != INVALID_HANDLE_VALUE || GetLastError() != ERROR_SHARING_VIOLATION) {
        _tprintf(TEXT("a second writer was let in\n"));
        return 1;
    }
    HANDLE mapping = CreateFileMapping(file, NULL, PAGE_READWRITE, 0, sizeof(JOURNAL), TEXT("Local\\FileJournalDemo"));
    HANDLE ready = CreateEvent(NULL, TRUE, FALSE, TEXT("Local\\FileJournalDemo.ready"));
    JOURNAL *journal = mapping ? (JOURNAL *)MapViewOfFile(mapping, FILE_MAP_WRITE, 0, 0, 0) : NULL;
    if (!journal || !ready) {
        ReportError(TEXT("mapping the journal"));
        return 1;
    }
    TCHAR self[MAX_PATH], command[MAX_PATH + 16];
    GetModuleFileName(NULL, self, MAX_PATH);
    wsprintf(command, TEXT("\"%s\" reader"), self);
    STARTUPINFO si;
    PROCESS_INFORMATION pi;
    ZeroMemory(&si, sizeof(si));
    si.cb = sizeof(si);
    if (!CreateProcess(NULL, command, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi)) {
        ReportError(TEXT("CreateProcess"));
        return 1;
    }
    for (int i = 0; i < RECORDS; i++)
        swprintf_s(journal->records[i], RECORD_CHARS, L"record %02d: %s", i, i % 2 ? L"even\u00e9" : L"odd");
    journal->count = RECORDS;
    FlushViewOfFile(journal, 0);
    SetEvent(ready);
    WaitForSingleObject(pi.hProcess, INFINITE);
    DWORD code = 1;
    GetExitCodeProcess(pi.hProcess, &code);
    _tprintf(TEXT("reader exit code %lu\n"), code);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);
    UnmapViewOfFile(journal);
    CloseHandle(mapping);
    CloseHandle(ready);
    CloseHandle(file); /* FILE_FLAG_DELETE_ON_CLOSE: the journal goes */
    if (GetFileAttributes(path) != INVALID_FILE_ATTRIBUTES) {
        _tprintf(TEXT("the journal was not deleted\n"));
        return 1;
    }
    return code == 0 ? 0 : 1;
}
