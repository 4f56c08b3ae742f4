// A producer and a consumer process sharing a ring buffer in named shared
// memory, written as a Windows C++ program is: UNICODE, _tmain, TEXT(),
// L"" names, named semaphores and a mutex, a CRITICAL_SECTION for the
// producer's own log. Run without arguments it is the producer: it starts
// the consumer (itself with "consumer"), sends kMessages lines and checks
// the consumer's answer.
#define UNICODE
#define _UNICODE
#include <windows.h>
#include <tchar.h>
#include <stdio.h>

namespace {

const int kSlots = 8;
const int kSlotChars = 64;
const int kMessages = 200;

struct Ring {
    LONG head;
    LONG tail;
    LONG checksum;
    WCHAR slots[kSlots][kSlotChars];
};

class Log {
public:
    Log() { InitializeCriticalSection(&lock_); }
    ~Log() { DeleteCriticalSection(&lock_); }
    void Line(LPCTSTR what, int n) {
        EnterCriticalSection(&lock_);
        _tprintf(_T("%s %d\n"), what, n);
        LeaveCriticalSection(&lock_);
    }
private:
    CRITICAL_SECTION lock_;
};

struct Shared {
    HANDLE mapping, empty, full, mutex;
    Ring *ring;
};

bool Open(Shared &s, bool create) {
    if (create) {
        s.mapping = CreateFileMapping(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, sizeof(Ring),
                                      TEXT("Local\\RingBufferDemo"));
        s.empty = CreateSemaphore(NULL, kSlots, kSlots, TEXT("Local\\RingBufferDemo.empty"));
        s.full = CreateSemaphore(NULL, 0, kSlots, TEXT("Local\\RingBufferDemo.full"));
        s.mutex = CreateMutex(NULL, FALSE, TEXT("Local\\RingBufferDemo.mutex"));
    } else {
        s.mapping = OpenFileMapping(FILE_MAP_ALL_ACCESS, FALSE, TEXT("Local\\RingBufferDemo"));
        s.empty = OpenSemaphore(SEMAPHORE_ALL_ACCESS, FALSE, TEXT("Local\\RingBufferDemo.empty"));
        s.full = OpenSemaphore(SEMAPHORE_ALL_ACCESS, FALSE, TEXT("Local\\RingBufferDemo.full"));
        s.mutex = OpenMutex(SYNCHRONIZE | MUTEX_MODIFY_STATE, FALSE, TEXT("Local\\RingBufferDemo.mutex"));
    }
    if (!s.mapping || !s.empty || !s.full || !s.mutex) {
        _tprintf(_T("could not open the shared objects (%lu)\n"), GetLastError());
        return false;
    }
    s.ring = static_cast<Ring *>(MapViewOfFile(s.mapping, FILE_MAP_ALL_ACCESS, 0, 0, sizeof(Ring)));
    return s.ring != NULL;
}

int Consumer() {
    Shared s;
    if (!Open(s, false)) return 2;
    for (int i = 0; i < kMessages; i++) {
        WaitForSingleObject(s.full, INFINITE);
        WaitForSingleObject(s.mutex, INFINITE);
        WCHAR line[kSlotChars];
        wcscpy_s(line, s.ring->slots[s.ring->tail]);
        s.ring->tail = (s.ring->tail + 1) % kSlots;
        ReleaseMutex(s.mutex);
        ReleaseSemaphore(s.empty, 1, NULL);
        s.ring->checksum += _wtoi(line + wcslen(L"message "));
    }
    UnmapViewOfFile(s.ring);
    return 0;
}

}  // namespace

int _tmain(int argc, TCHAR *argv[]) {
    if (argc > 1 && _tcscmp(argv[1], _T("consumer")) == 0) return Consumer();

    Log log;
    Shared s;
    if (!Open(s, true)) return 1;
    ZeroMemory(s.ring, sizeof(Ring));

    TCHAR self[MAX_PATH];
    GetModuleFileName(NULL, self, MAX_PATH);
    TCHAR command[MAX_PATH + 16];
    _stprintf_s(command, MAX_PATH + 16, _T("\"%s\" consumer"), self);
    STARTUPINFO si;
    PROCESS_INFORMATION pi;
    ZeroMemory(&si, sizeof(si));
    si.cb = sizeof(si);
    if (!CreateProcess(NULL, command, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi)) {
        _tprintf(_T("CreateProcess failed (%lu)\n"), GetLastError());
        return 1;
    }
    LONG expected = 0;
    for (int i = 1; i <= kMessages; i++) {
        WaitForSingleObject(s.empty, INFINITE);
        WaitForSingleObject(s.mutex, INFINITE);
        swprintf_s(s.ring->slots[s.ring->head], kSlotChars, L"message %d \u2192 consumer", i);
        s.ring->head = (s.ring->head + 1) % kSlots;
        ReleaseMutex(s.mutex);
        ReleaseSemaphore(s.full, 1, NULL);
        expected += i;
    }
    log.Line(_T("sent"), kMessages);
    WaitForSingleObject(pi.hProcess, INFINITE);
    DWORD code = 1;
    GetExitCodeProcess(pi.hProcess, &code);
    log.Line(_T("consumer exit code"), static_cast<int>(code));
    bool ok = code == 0 && s.ring->checksum == expected;
    _tprintf(ok ? _T("checksum %ld: OK\n") : _T("checksum %ld: WRONG\n"), s.ring->checksum);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);
    UnmapViewOfFile(s.ring);
    CloseHandle(s.mapping);
    CloseHandle(s.empty);
    CloseHandle(s.full);
    CloseHandle(s.mutex);
    return ok ? 0 : 1;
}
