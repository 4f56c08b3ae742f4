/* A supervisor that runs worker processes in a job object, written as a
   Windows C program is (UNICODE, _tmain, TEXT(), _tprintf): the workers
   count into shared memory under a named mutex, each with two threads that
   share a CRITICAL_SECTION; the supervisor waits for all of them and kills
   what is left by closing the job. */
#define UNICODE
#define _UNICODE
#include <windows.h>
#include <tchar.h>
#include <stdio.h>

#define WORKERS 3
#define ROUNDS 500

typedef struct {
    LONG total;
    LONG per_worker[WORKERS];
} COUNTERS;

typedef struct {
    COUNTERS *counters;
    HANDLE mutex;
    int index;
    CRITICAL_SECTION *lock;
    LONG *local;
} WORKER_THREAD;

static DWORD WINAPI CountThread(LPVOID param) {
    WORKER_THREAD *w = (WORKER_THREAD *)param;
    for (int i = 0; i < ROUNDS; i++) {
        if (WaitForSingleObject(w->mutex, INFINITE) != WAIT_OBJECT_0) return 1;
        w->counters->total++;
        w->counters->per_worker[w->index]++;
        ReleaseMutex(w->mutex);
        EnterCriticalSection(w->lock);
        (*w->local)++;
        LeaveCriticalSection(w->lock);
    }
    return 0;
}

static int Worker(int index) {
    HANDLE mapping = OpenFileMapping(FILE_MAP_WRITE, FALSE, TEXT("Local\\JobWorkersDemo"));
    HANDLE mutex = OpenMutex(SYNCHRONIZE | MUTEX_MODIFY_STATE, FALSE, TEXT("Local\\JobWorkersDemo.lock"));
    if (!mapping || !mutex) return 2;
    COUNTERS *counters = (COUNTERS *)MapViewOfFile(mapping, FILE_MAP_WRITE, 0, 0, 0);
    if (!counters) return 3;
    CRITICAL_SECTION lock;
    InitializeCriticalSection(&lock);
    LONG local = 0;
    WORKER_THREAD params[2] = {{counters, mutex, index, &lock, &local}, {counters, mutex, index, &lock, &local}};
    HANDLE threads[2];
    for (int i = 0; i < 2; i++) threads[i] = CreateThread(NULL, 0, CountThread, &params[i], 0, NULL);
    WaitForMultipleObjects(2, threads, TRUE, INFINITE);
    for (int i = 0; i < 2; i++) CloseHandle(threads[i]);
    DeleteCriticalSection(&lock);
    UnmapViewOfFile(counters);
    CloseHandle(mapping);
    CloseHandle(mutex);
    return local == 2 * ROUNDS ? 0 : 4;
}

int _tmain(int argc, TCHAR *argv[]) {
    if (argc > 2 && _tcscmp(argv[1], TEXT("worker")) == 0) return Worker(_ttoi(argv[2]));

    HANDLE job = CreateJobObject(NULL, NULL);
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION limits;
    ZeroMemory(&limits, sizeof(limits));
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    if (!job || !SetInformationJobObject(job, JobObjectExtendedLimitInformation, &limits, sizeof(limits))) {
        _tprintf(TEXT("job: %lu\n"), GetLastError());
        return 1;
    }
    HANDLE mapping = CreateFileMapping(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, sizeof(COUNTERS),
                                       TEXT("Local\\JobWorkersDemo"));
    HANDLE mutex = CreateMutex(NULL, FALSE, TEXT("Local\\JobWorkersDemo.lock"));
    COUNTERS *counters = (COUNTERS *)MapViewOfFile(mapping, FILE_MAP_ALL_ACCESS, 0, 0, 0);
    if (!counters || !mutex) return 1;

    TCHAR self[MAX_PATH];
    GetModuleFileName(NULL, self, MAX_PATH);
    HANDLE processes[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        TCHAR command[MAX_PATH + 32];
        _stprintf_s(command, _countof(command), TEXT("\"%s\" worker %d"), self, i);
        STARTUPINFO si;
        PROCESS_INFORMATION pi;
        ZeroMemory(&si, sizeof(si));
        si.cb = sizeof(si);
        /* Suspended until it is in the job, as Windows programs do it. */
        if (!CreateProcess(NULL, command, NULL, NULL, FALSE, CREATE_SUSPENDED, NULL, NULL, &si, &pi) ||
            !AssignProcessToJobObject(job, pi.hProcess) || ResumeThread(pi.hThread) == (DWORD)-1) {
            _tprintf(TEXT("starting worker %d: %lu\n"), i, GetLastError());
            return 1;
        }
        CloseHandle(pi.hThread);
        processes[i] = pi.hProcess;
    }
    WaitForMultipleObjects(WORKERS, processes, TRUE, INFINITE);
    int failed = 0;
    for (int i = 0; i < WORKERS; i++) {
        DWORD code = 1;
        GetExitCodeProcess(processes[i], &code);
        _tprintf(TEXT("worker %d: exit %lu, counted %ld\n"), i, code, counters->per_worker[i]);
        failed += code != 0 || counters->per_worker[i] != 2 * ROUNDS;
        CloseHandle(processes[i]);
    }
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION accounting;
    QueryInformationJobObject(job, JobObjectBasicAccountingInformation, &accounting, sizeof(accounting), NULL);
    _tprintf(TEXT("total %ld in %lu processes: %s\n"), counters->total, accounting.TotalProcesses,
             !failed && counters->total == WORKERS * 2 * ROUNDS ? TEXT("OK") : TEXT("WRONG"));
    CloseHandle(job);
    UnmapViewOfFile(counters);
    CloseHandle(mapping);
    CloseHandle(mutex);
    return failed || counters == NULL ? 1 : 0;
}
