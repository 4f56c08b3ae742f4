/* Exercises the exported Win32 functions: results and GetLastError codes as
   Microsoft documents them. Run against an isolated broker (OBJMGR_SOCKET). */
#include <windows.h>
#include <pthread.h>
#include <unistd.h>
#include <string.h>
#include "check.h"

static HANDLE g_mutex;
static DWORD g_thread_error;
static DWORD g_release_error;

static void *other_thread(void *arg) {
    (void)arg;
    /* GetLastError is per thread. */
    g_thread_error = GetLastError();
    /* A thread that does not own the mutex cannot release it. */
    SetLastError(0);
    if (!ReleaseMutex(g_mutex)) g_release_error = GetLastError();
    /* Take it and exit holding it: abandoned. */
    WaitForSingleObject(g_mutex, INFINITE);
    return NULL;
}

static void sections(void) {
    HANDLE h = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 65536 * 2, "Local\\c-section");
    CHECK(h != NULL);
    CHECK(GetLastError() == 0);
    HANDLE again = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096, "Local\\c-section");
    CHECK(again != NULL && GetLastError() == ERROR_ALREADY_EXISTS);
    CloseHandle(again);
    CHECK_ERR(CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 0, NULL), NULL, ERROR_INVALID_PARAMETER);
    CHECK_ERR(CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, 0x12345, 0, 4096, NULL), NULL, ERROR_INVALID_PARAMETER);
    CHECK_ERR(OpenFileMappingA(FILE_MAP_READ, FALSE, "Local\\no-such-mapping"), NULL, ERROR_FILE_NOT_FOUND);
    CHECK_ERR(OpenFileMappingA(FILE_MAP_READ, FALSE, "Bogus\\x"), NULL, ERROR_PATH_NOT_FOUND);

    char *view = MapViewOfFile(h, FILE_MAP_ALL_ACCESS, 0, 0, 0);
    CHECK(view != NULL);
    strcpy(view, "hello from C");
    char *second = MapViewOfFile(h, FILE_MAP_READ, 0, 65536, 4096);
    CHECK(second != NULL);
    CHECK_ERR(MapViewOfFile(h, FILE_MAP_READ, 0, 4096, 4096), NULL, ERROR_MAPPED_ALIGNMENT);
    CHECK_ERR(MapViewOfFile(h, FILE_MAP_READ, 0, 0, 65536 * 4), NULL, ERROR_ACCESS_DENIED);
    CHECK(FlushViewOfFile(view, 0));
    CHECK(FlushViewOfFile(view + 100, 10));

    /* A read-only handle never gives a writable view. */
    HANDLE ro = OpenFileMappingA(FILE_MAP_READ, FALSE, "Local\\c-section");
    CHECK(ro != NULL);
    char *rview = MapViewOfFile(ro, FILE_MAP_READ, 0, 0, 4096);
    CHECK(rview != NULL && strcmp(rview, "hello from C") == 0);
    CHECK_ERR(MapViewOfFile(ro, FILE_MAP_WRITE, 0, 0, 4096), NULL, ERROR_ACCESS_DENIED);
    CHECK(UnmapViewOfFile(rview));
    CHECK_ERR(UnmapViewOfFile(rview), FALSE, ERROR_INVALID_ADDRESS);
    CHECK(CloseHandle(ro));

    /* A view at a chosen address maps exactly there. */
    char *base = MapViewOfFile(h, FILE_MAP_READ, 0, 0, 4096);
    CHECK(base != NULL);
    CHECK(UnmapViewOfFile(base));
    char *placed = MapViewOfFileEx(h, FILE_MAP_READ, 0, 0, 4096, base);
    CHECK(placed == base);
    CHECK_ERR(MapViewOfFileEx(h, FILE_MAP_READ, 0, 0, 4096, base), NULL, ERROR_INVALID_ADDRESS);
    CHECK(UnmapViewOfFile(placed));

    /* Wide names reach the same object. */
    const WCHAR wname[] = u"Local\\c-section";
    HANDLE w = OpenFileMappingW(FILE_MAP_READ, FALSE, wname);
    CHECK(w != NULL);
    CloseHandle(w);

    CHECK(UnmapViewOfFile(second));
    CHECK(UnmapViewOfFile(view));
    CHECK(CloseHandle(h));
    CHECK_ERR(CloseHandle(h), FALSE, ERROR_INVALID_HANDLE);
    CHECK_ERR(OpenFileMappingA(FILE_MAP_READ, FALSE, "Local\\c-section"), NULL, ERROR_FILE_NOT_FOUND);
}

static void mutexes(void) {
    g_mutex = CreateMutexA(NULL, TRUE, "Local\\c-mutex");
    CHECK(g_mutex != NULL && GetLastError() == 0);
    CHECK(WaitForSingleObject(g_mutex, 0) == WAIT_OBJECT_0); /* recursive */
    CHECK(ReleaseMutex(g_mutex));
    CHECK(ReleaseMutex(g_mutex));
    CHECK_ERR(ReleaseMutex(g_mutex), FALSE, ERROR_NOT_OWNER);
    HANDLE again = CreateMutexA(NULL, TRUE, "Local\\c-mutex");
    CHECK(again != NULL && GetLastError() == ERROR_ALREADY_EXISTS);
    CHECK_ERR(ReleaseMutex(again), FALSE, ERROR_NOT_OWNER); /* not acquired by the create */
    CloseHandle(again);
    CHECK_ERR(CreateEventA(NULL, FALSE, FALSE, "Local\\c-mutex"), NULL, ERROR_INVALID_HANDLE);
    CHECK_ERR(OpenSemaphoreA(SYNCHRONIZE, FALSE, "Local\\c-mutex"), NULL, ERROR_INVALID_HANDLE);

    SetLastError(1234);
    pthread_t t;
    pthread_create(&t, NULL, other_thread, NULL);
    pthread_join(t, NULL);
    CHECK(g_thread_error == 0);
    CHECK(GetLastError() == 1234);
    CHECK(g_release_error == ERROR_NOT_OWNER);
    /* The other thread exited owning it. */
    CHECK(WaitForSingleObject(g_mutex, 5000) == WAIT_ABANDONED);
    CHECK(ReleaseMutex(g_mutex));
    CHECK(CloseHandle(g_mutex));
}

static void events_and_semaphores(void) {
    HANDLE autoev = CreateEventA(NULL, FALSE, TRUE, NULL);
    HANDLE manual = CreateEventW(NULL, TRUE, FALSE, NULL);
    CHECK(autoev && manual);
    CHECK(WaitForSingleObject(autoev, 0) == WAIT_OBJECT_0);
    CHECK(WaitForSingleObject(autoev, 0) == WAIT_TIMEOUT);
    CHECK(SetEvent(manual));
    CHECK(WaitForSingleObject(manual, 0) == WAIT_OBJECT_0);
    CHECK(WaitForSingleObject(manual, 0) == WAIT_OBJECT_0);
    CHECK(ResetEvent(manual));
    CHECK(PulseEvent(manual));
    CHECK(WaitForSingleObject(manual, 0) == WAIT_TIMEOUT);
    HANDLE ex = CreateEventExA(NULL, NULL, CREATE_EVENT_MANUAL_RESET | CREATE_EVENT_INITIAL_SET, EVENT_ALL_ACCESS);
    CHECK(ex && WaitForSingleObject(ex, 0) == WAIT_OBJECT_0 && WaitForSingleObject(ex, 0) == WAIT_OBJECT_0);

    CHECK_ERR(CreateSemaphoreA(NULL, 2, 1, NULL), NULL, ERROR_INVALID_PARAMETER);
    CHECK_ERR(CreateSemaphoreA(NULL, 0, 0, NULL), NULL, ERROR_INVALID_PARAMETER);
    CHECK_ERR(CreateSemaphoreA(NULL, -1, 5, NULL), NULL, ERROR_INVALID_PARAMETER);
    HANDLE sem = CreateSemaphoreA(NULL, 1, 3, "Local\\c-sem");
    CHECK(sem != NULL);
    LONG previous = -1;
    CHECK(ReleaseSemaphore(sem, 2, &previous) && previous == 1);
    CHECK_ERR(ReleaseSemaphore(sem, 1, &previous), FALSE, ERROR_TOO_MANY_POSTS);
    CHECK_ERR(ReleaseSemaphore(sem, 0, NULL), FALSE, ERROR_INVALID_PARAMETER);
    HANDLE sync_only = OpenSemaphoreA(SYNCHRONIZE, FALSE, "Local\\c-sem");
    CHECK(sync_only != NULL);
    CHECK_ERR(ReleaseSemaphore(sync_only, 1, NULL), FALSE, ERROR_ACCESS_DENIED);
    CHECK_ERR(SetEvent(sem), FALSE, ERROR_INVALID_HANDLE);
    HANDLE modify_only = OpenSemaphoreA(SEMAPHORE_MODIFY_STATE, FALSE, "Local\\c-sem");
    CHECK(modify_only != NULL);
    CHECK_ERR(WaitForSingleObject(modify_only, 0), WAIT_FAILED, ERROR_ACCESS_DENIED);
    CHECK(CloseHandle(modify_only));
    /* The two low bits of a value are the application's (Windows ignores them). */
    CHECK(WaitForSingleObject((HANDLE)((UINT_PTR)sem | 3), 0) == WAIT_OBJECT_0);
    CHECK(ReleaseSemaphore((HANDLE)((UINT_PTR)sem | 1), 1, NULL));

    /* A closed handle's value, reused for another type, names the new object only. */
    HANDLE gone = CreateEventA(NULL, FALSE, TRUE, NULL);
    CHECK(gone != NULL && WaitForSingleObject(gone, 0) == WAIT_OBJECT_0 && CloseHandle(gone));
    CHECK_ERR(SetEvent(gone), FALSE, ERROR_INVALID_HANDLE);
    /* The lowest free value comes back: make semaphores until it does. */
    HANDLE made[8] = {0};
    HANDLE reused = NULL;
    for (int i = 0; i < 8 && reused == NULL; i++) {
        made[i] = CreateSemaphoreA(NULL, 0, 1, NULL);
        CHECK(made[i] != NULL);
        if (made[i] == gone) reused = made[i];
    }
    CHECK(reused == gone);
    CHECK_ERR(SetEvent(gone), FALSE, ERROR_INVALID_HANDLE);
    CHECK_ERR(ReleaseMutex(gone), FALSE, ERROR_INVALID_HANDLE);
    CHECK(WaitForSingleObject(reused, 0) == WAIT_TIMEOUT);
    CHECK(ReleaseSemaphore(reused, 1, NULL) && WaitForSingleObject(reused, 0) == WAIT_OBJECT_0);
    for (int i = 0; i < 8; i++)
        if (made[i]) CHECK(CloseHandle(made[i]));

    /* Waits on many: the lowest signaled index; all at once or nothing. */
    HANDLE set[3] = {autoev, sem, manual};
    CHECK(WaitForMultipleObjects(3, set, FALSE, 0) == WAIT_OBJECT_0 + 1);
    CHECK(WaitForMultipleObjects(3, set, TRUE, 10) == WAIT_TIMEOUT);
    CHECK(SetEvent(autoev) && SetEvent(manual));
    CHECK(WaitForMultipleObjects(3, set, TRUE, 0) == WAIT_OBJECT_0);
    CHECK(WaitForSingleObject(autoev, 0) == WAIT_TIMEOUT); /* taken by the wait-all */
    HANDLE dup[2] = {sem, sem};
    CHECK_ERR(WaitForMultipleObjects(2, dup, TRUE, 0), WAIT_FAILED, ERROR_INVALID_PARAMETER);
    CHECK_ERR(WaitForMultipleObjects(0, set, FALSE, 0), WAIT_FAILED, ERROR_INVALID_PARAMETER);
    CHECK_ERR(WaitForMultipleObjects(65, set, FALSE, 0), WAIT_FAILED, ERROR_INVALID_PARAMETER);
    HANDLE section = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096, NULL);
    CHECK_ERR(WaitForSingleObject(section, 0), WAIT_FAILED, ERROR_INVALID_HANDLE);
    CHECK_ERR(WaitForSingleObject((HANDLE)0x7777770, 0), WAIT_FAILED, ERROR_INVALID_HANDLE);
    CloseHandle(section);

    /* SignalObjectAndWait: release one, wait on the other. */
    CHECK(ResetEvent(manual)); /* so that only the signal can set it */
    CHECK(SignalObjectAndWait(manual, autoev, 0, FALSE) == WAIT_TIMEOUT);
    CHECK(WaitForSingleObject(manual, 0) == WAIT_OBJECT_0);

    CloseHandle(sync_only);
    CloseHandle(sem);
    CloseHandle(ex);
    CloseHandle(autoev);
    CloseHandle(manual);
}

static void timers(void) {
    HANDLE t = CreateWaitableTimerA(NULL, FALSE, NULL);
    CHECK(t != NULL);
    LARGE_INTEGER due;
    due.QuadPart = -500000; /* 50 ms */
    CHECK_ERR(SetWaitableTimer(t, &due, -1, NULL, NULL, FALSE), FALSE, ERROR_INVALID_PARAMETER);
    ULONGLONG start = GetTickCount64();
    CHECK(SetWaitableTimer(t, &due, 20, NULL, NULL, FALSE));
    CHECK(WaitForSingleObject(t, 5000) == WAIT_OBJECT_0);
    CHECK(GetTickCount64() - start >= 40);
    CHECK(WaitForSingleObject(t, 5000) == WAIT_OBJECT_0); /* periodic */
    CHECK(CancelWaitableTimer(t));
    CHECK(WaitForSingleObject(t, 100) == WAIT_TIMEOUT);
    CloseHandle(t);
}

static void handles(void) {
    HANDLE e = CreateEventA(NULL, FALSE, FALSE, NULL);
    DWORD flags = 99;
    CHECK(GetHandleInformation(e, &flags) && flags == 0);
    CHECK(SetHandleInformation(e, HANDLE_FLAG_INHERIT | HANDLE_FLAG_PROTECT_FROM_CLOSE,
                               HANDLE_FLAG_INHERIT | HANDLE_FLAG_PROTECT_FROM_CLOSE));
    CHECK(GetHandleInformation(e, &flags) && flags == 3);
    CHECK_ERR(CloseHandle(e), FALSE, ERROR_INVALID_HANDLE);
    CHECK(SetEvent(e)); /* still open */
    CHECK(SetHandleInformation(e, HANDLE_FLAG_PROTECT_FROM_CLOSE, 0));

    HANDLE copy = NULL;
    CHECK(DuplicateHandle(GetCurrentProcess(), e, GetCurrentProcess(), &copy, SYNCHRONIZE, FALSE, 0));
    CHECK(copy != NULL && copy != e);
    CHECK(WaitForSingleObject(copy, 0) == WAIT_OBJECT_0);
    CHECK_ERR(SetEvent(copy), FALSE, ERROR_ACCESS_DENIED); /* reduced access */
    /* More access than the source has: the event's security descriptor
       decides (its default grants the creator everything). */
    HANDLE wider = NULL;
    CHECK(DuplicateHandle(GetCurrentProcess(), copy, GetCurrentProcess(), &wider, EVENT_ALL_ACCESS, FALSE, 0));
    CHECK(SetEvent(wider) && ResetEvent(wider) && CloseHandle(wider));
    HANDLE moved = NULL;
    CHECK(DuplicateHandle(GetCurrentProcess(), copy, GetCurrentProcess(), &moved, 0, FALSE,
                          DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE));
    CHECK_ERR(CloseHandle(copy), FALSE, ERROR_INVALID_HANDLE);
    CHECK(CloseHandle(moved));
    CHECK(CloseHandle(e));
    CHECK(CloseHandle(GetCurrentProcess())); /* a pseudo-handle: no-op */

    /* The usual way to get a real handle to the calling thread. */
    HANDLE self_thread = NULL;
    CHECK(DuplicateHandle(GetCurrentProcess(), GetCurrentThread(), GetCurrentProcess(), &self_thread, 0,
                          FALSE, DUPLICATE_SAME_ACCESS));
    CHECK(self_thread != NULL && self_thread != GetCurrentThread());
    CHECK(WaitForSingleObject(self_thread, 0) == WAIT_TIMEOUT);
    DWORD self_code = 0;
    CHECK(GetExitCodeThread(self_thread, &self_code) && self_code == STILL_ACTIVE);
    CHECK(CloseHandle(self_thread));
    CHECK(CloseHandle(GetCurrentThread())); /* a pseudo-handle: no-op */
    CHECK_ERR(CloseHandle(NULL), FALSE, ERROR_INVALID_HANDLE);
    CHECK_ERR(GetHandleInformation((HANDLE)0x4444, &flags), FALSE, ERROR_INVALID_HANDLE);
}

static void system_and_interlocked(void) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    CHECK(si.dwPageSize == 4096 && si.dwAllocationGranularity == 65536 && si.dwNumberOfProcessors >= 1);
    LARGE_INTEGER f, c1, c2;
    CHECK(QueryPerformanceFrequency(&f) && f.QuadPart > 0);
    CHECK(QueryPerformanceCounter(&c1));
    Sleep(10);
    CHECK(QueryPerformanceCounter(&c2) && c2.QuadPart - c1.QuadPart >= f.QuadPart / 100);
    ULONGLONG t1 = GetTickCount64();
    Sleep(20);
    CHECK(GetTickCount64() - t1 >= 15 && (DWORD)GetTickCount64() - GetTickCount() < 1000);
    CHECK(GetCurrentProcessId() == (DWORD)getpid());
    CHECK(GetCurrentThreadId() != 0);
    char path[MAX_PATH];
    DWORD n = GetModuleFileNameA(NULL, path, MAX_PATH);
    CHECK(n > 0 && n == strlen(path) && strstr(path, "api") != NULL);
    CHECK_ERR(GetModuleFileNameA(NULL, path, 3), 3, ERROR_INSUFFICIENT_BUFFER);

    volatile LONG v = 5;
    CHECK(InterlockedIncrement(&v) == 6 && InterlockedDecrement(&v) == 5);
    CHECK(InterlockedExchange(&v, 9) == 5 && v == 9);
    CHECK(InterlockedCompareExchange(&v, 1, 9) == 9 && v == 1);
    CHECK(InterlockedCompareExchange(&v, 2, 9) == 1 && v == 1);
    CHECK(InterlockedExchangeAdd(&v, 10) == 1 && v == 11);
    volatile LONG64 w = 1;
    CHECK(InterlockedIncrement64(&w) == 2 && InterlockedCompareExchange64(&w, 7, 2) == 2 && w == 7);
    void *volatile p = NULL;
    int x;
    CHECK(InterlockedCompareExchangePointer(&p, &x, NULL) == NULL && p == &x);
    MemoryBarrier();
    char buf[8];
    FillMemory(buf, sizeof buf, 'a');
    ZeroMemory(buf, 4);
    CHECK(buf[3] == 0 && buf[4] == 'a');
}

int main(void) {
    sections();
    mutexes();
    events_and_semaphores();
    timers();
    handles();
    system_and_interlocked();
    CHECK_DONE();
}
