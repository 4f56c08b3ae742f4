/* Thread control: CREATE_SUSPENDED threads and processes, ResumeThread,
   SuspendThread of a running thread, APCs and alertable waits. */
#include <windows.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

static volatile LONG ticks;
static volatile LONG stop;
static LONG apc_sum;
static DWORD apc_thread;

static DWORD WINAPI count_up(LPVOID unused) {
    (void)unused;
    while (!stop) InterlockedIncrement(&ticks);
    return 7;
}

static VOID CALLBACK add_apc(ULONG_PTR value) {
    apc_sum += (LONG)value;
    apc_thread = GetCurrentThreadId();
}

static LONG timer_calls;
static VOID CALLBACK on_timer(LPVOID arg, DWORD low, DWORD high) {
    if (arg == (LPVOID)&timer_calls && (low || high)) timer_calls++;
}

static DWORD WINAPI sleep_alertably(LPVOID unused) {
    (void)unused;
    return SleepEx(INFINITE, TRUE);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        /* The child: signals the event it was told of, by name. */
        HANDLE e = OpenEventA(EVENT_MODIFY_STATE, FALSE, argv[1]);
        return e && SetEvent(e) ? 0 : 1;
    }

    /* A thread created suspended runs nothing until resumed. */
    HANDLE t = CreateThread(NULL, 0, count_up, NULL, CREATE_SUSPENDED, NULL);
    CHECK(t != NULL);
    Sleep(50);
    CHECK(ticks == 0);
    CHECK(GetThreadId(t) != 0 && GetThreadId(GetCurrentThread()) == GetCurrentThreadId());
    CHECK(SuspendThread(t) == 1);
    CHECK(ResumeThread(t) == 2);
    Sleep(20);
    CHECK(ticks == 0);
    CHECK(ResumeThread(t) == 1);
    Sleep(50);
    CHECK(ticks > 0);
    CHECK(ResumeThread(t) == 0); /* not suspended */

    /* SuspendThread stops a running thread where it is. */
    CHECK(SuspendThread(t) == 0);
    Sleep(20);
    LONG frozen = ticks;
    Sleep(50);
    CHECK(ticks == frozen);
    CHECK(ResumeThread(t) == 1);
    Sleep(50);
    CHECK(ticks > frozen);
    stop = 1;
    DWORD code = 0;
    CHECK(WaitForSingleObject(t, 10000) == WAIT_OBJECT_0 && GetExitCodeThread(t, &code) && code == 7);
    CloseHandle(t);

    /* APCs run in the target's alertable wait, which then returns
       WAIT_IO_COMPLETION. */
    t = CreateThread(NULL, 0, sleep_alertably, NULL, 0, NULL);
    Sleep(50);
    CHECK(QueueUserAPC(add_apc, t, 5));
    CHECK(WaitForSingleObject(t, 10000) == WAIT_OBJECT_0 && GetExitCodeThread(t, &code) &&
          code == WAIT_IO_COMPLETION);
    CHECK(apc_sum == 5 && apc_thread == GetThreadId(t));
    CloseHandle(t);
    /* Queued to oneself: nothing runs until an alertable wait, then all. */
    CHECK(QueueUserAPC(add_apc, GetCurrentThread(), 10));
    CHECK(QueueUserAPC(add_apc, GetCurrentThread(), 100));
    Sleep(10);
    CHECK(SleepEx(0, FALSE) == 0);
    CHECK(apc_sum == 5);
    HANDLE never = CreateEvent(NULL, TRUE, FALSE, NULL);
    CHECK(WaitForSingleObjectEx(never, INFINITE, TRUE) == WAIT_IO_COMPLETION);
    CHECK(apc_sum == 115 && apc_thread == GetCurrentThreadId());
    CHECK(WaitForSingleObjectEx(never, 10, TRUE) == WAIT_TIMEOUT);
    CHECK(SleepEx(10, TRUE) == 0);
    HANDLE both[2] = {never, never};
    CHECK(QueueUserAPC(add_apc, GetCurrentThread(), 1000));
    CHECK(WaitForMultipleObjectsEx(2, both, TRUE, INFINITE, TRUE) == WAIT_IO_COMPLETION && apc_sum == 1115);
    CHECK_ERR(QueueUserAPC(NULL, GetCurrentThread(), 0), 0, ERROR_INVALID_PARAMETER);
    CloseHandle(never);

    /* A timer's completion routine runs in the setting thread's alertable
       waits, each period, until the timer is cancelled. */
    HANDLE timer = CreateWaitableTimer(NULL, FALSE, NULL);
    LARGE_INTEGER due;
    due.QuadPart = -10 * 1000 * 10; /* 10 ms */
    CHECK(SetWaitableTimer(timer, &due, 20, on_timer, &timer_calls, FALSE));
    Sleep(50);
    CHECK(timer_calls == 0); /* not alertable: nothing ran */
    CHECK(SleepEx(INFINITE, TRUE) == WAIT_IO_COMPLETION);
    CHECK(timer_calls >= 1);
    while (timer_calls < 3) CHECK(SleepEx(1000, TRUE) == WAIT_IO_COMPLETION);
    CHECK(CancelWaitableTimer(timer));
    SleepEx(0, TRUE); /* one already queued may still run */
    LONG after_cancel = timer_calls;
    CHECK(SleepEx(60, TRUE) == 0 && timer_calls == after_cancel);
    CloseHandle(timer);

    /* A process created suspended starts its program at ResumeThread. */
    char name[64], cmd[MAX_PATH + 80], self[MAX_PATH];
    snprintf(name, sizeof name, "Local\\threads-child-%lu", (unsigned long)GetCurrentProcessId());
    HANDLE done = CreateEventA(NULL, TRUE, FALSE, name);
    CHECK(GetModuleFileNameA(NULL, self, MAX_PATH) > 0);
    snprintf(cmd, sizeof cmd, "\"%s\" %s", self, name);
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    CHECK(CreateProcessA(NULL, cmd, NULL, NULL, FALSE, CREATE_SUSPENDED, NULL, NULL, &si, &pi));
    CHECK(GetThreadId(pi.hThread) == pi.dwProcessId);
    /* A session of its own: no other user's process can send it the
       SIGCONT its start waits for. */
    CHECK(getsid((pid_t)pi.dwProcessId) == (pid_t)pi.dwProcessId);
    CHECK(WaitForSingleObject(done, 300) == WAIT_TIMEOUT);
    CHECK(GetExitCodeProcess(pi.hProcess, &code) && code == STILL_ACTIVE);
    CHECK(SuspendThread(pi.hThread) == 1);
    CHECK(ResumeThread(pi.hThread) == 2);
    CHECK(WaitForSingleObject(done, 200) == WAIT_TIMEOUT);
    CHECK(ResumeThread(pi.hThread) == 1);
    CHECK(WaitForSingleObject(done, 10000) == WAIT_OBJECT_0);
    CHECK(WaitForSingleObject(pi.hProcess, 10000) == WAIT_OBJECT_0 && GetExitCodeProcess(pi.hProcess, &code) &&
          code == 0);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);

    /* A missing program fails at CreateProcess, suspended or not. */
    char missing[] = "/nonexistent/objmgr-test-program";
    CHECK_ERR(CreateProcessA(NULL, missing, NULL, NULL, FALSE, CREATE_SUSPENDED, NULL, NULL, &si, &pi), FALSE,
              ERROR_FILE_NOT_FOUND);
    CloseHandle(done);
    CHECK_DONE();
}
