/* Job objects through the C ABI, as a Windows supervisor uses them: a
   job that kills its workers when it closes, limits, accounting, the
   process-id list, termination with an exit code, and errors. */
#include <stdint.h>
#include <string.h>
#include "check.h"

static const char *self;

/* A worker: sleep (or burn CPU) until killed. */
static int worker(const char *mode) {
    if (strcmp(mode, "burn") == 0) {
        volatile uint64_t x = 0;
        for (;;) x = x * 6364136223846793005ULL + 1;
    }
    Sleep(60000);
    return 0;
}

static PROCESS_INFORMATION start(const char *mode, DWORD flags) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "\"%s\" %s", self, mode);
    STARTUPINFOA si;
    ZeroMemory(&si, sizeof si);
    si.cb = sizeof si;
    PROCESS_INFORMATION pi;
    ZeroMemory(&pi, sizeof pi);
    if (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, flags, NULL, NULL, &si, &pi)) {
        pi.hProcess = NULL;
    }
    return pi;
}

int main(int argc, char **argv) {
    self = argv[0];
    if (argc > 1) return worker(argv[1]);

    /* Names and types. */
    HANDLE job = CreateJobObjectA(NULL, "Local\\c-jobs");
    CHECK(job != NULL && GetLastError() == 0);
    HANDLE again = CreateJobObjectA(NULL, "Local\\c-jobs");
    CHECK(again != NULL && GetLastError() == ERROR_ALREADY_EXISTS);
    CloseHandle(again);
    CHECK_ERR(CreateEventA(NULL, TRUE, FALSE, "Local\\c-jobs"), NULL, ERROR_INVALID_HANDLE);
    HANDLE query_only = OpenJobObjectA(JOB_OBJECT_QUERY, FALSE, "Local\\c-jobs");
    CHECK(query_only != NULL);
    CHECK_ERR(OpenJobObjectA(JOB_OBJECT_QUERY, FALSE, NULL), NULL, ERROR_INVALID_PARAMETER);
    CHECK_ERR(OpenJobObjectA(JOB_OBJECT_QUERY, FALSE, "Local\\no-such-job"), NULL, ERROR_FILE_NOT_FOUND);

    /* Limits: kill on close, two processes at most. */
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION limits;
    ZeroMemory(&limits, sizeof limits);
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE | JOB_OBJECT_LIMIT_ACTIVE_PROCESS;
    limits.BasicLimitInformation.ActiveProcessLimit = 2;
    CHECK(SetInformationJobObject(job, JobObjectExtendedLimitInformation, &limits, sizeof limits));
    CHECK_ERR(SetInformationJobObject(job, JobObjectExtendedLimitInformation, &limits, sizeof limits - 1), FALSE,
              ERROR_BAD_LENGTH);
    CHECK_ERR(SetInformationJobObject(query_only, JobObjectExtendedLimitInformation, &limits, sizeof limits), FALSE,
              ERROR_ACCESS_DENIED);
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION bad = limits;
    bad.BasicLimitInformation.LimitFlags |= JOB_OBJECT_LIMIT_JOB_MEMORY;
    bad.JobMemoryLimit = 1 << 30;
    CHECK_ERR(SetInformationJobObject(job, JobObjectExtendedLimitInformation, &bad, sizeof bad), FALSE,
              ERROR_NOT_SUPPORTED);
    JOBOBJECT_BASIC_LIMIT_INFORMATION basic;
    ZeroMemory(&basic, sizeof basic);
    basic.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE; /* not a basic flag */
    CHECK_ERR(SetInformationJobObject(job, JobObjectBasicLimitInformation, &basic, sizeof basic), FALSE,
              ERROR_INVALID_PARAMETER);
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION now;
    DWORD got = 0;
    CHECK(QueryInformationJobObject(query_only, JobObjectExtendedLimitInformation, &now, sizeof now, &got));
    CHECK(got == sizeof now && now.BasicLimitInformation.LimitFlags == limits.BasicLimitInformation.LimitFlags);
    CHECK(now.BasicLimitInformation.ActiveProcessLimit == 2);

    /* Workers: two fit, the third is refused and ended. */
    PROCESS_INFORMATION a = start("sleep", 0), b = start("sleep", 0), c = start("sleep", 0);
    CHECK(a.hProcess && b.hProcess && c.hProcess);
    BOOL inside = TRUE;
    CHECK(IsProcessInJob(a.hProcess, job, &inside) && !inside);
    CHECK(AssignProcessToJobObject(job, a.hProcess));
    CHECK(AssignProcessToJobObject(job, b.hProcess));
    CHECK(IsProcessInJob(a.hProcess, job, &inside) && inside);
    CHECK(IsProcessInJob(a.hProcess, NULL, &inside) && inside);
    CHECK(IsProcessInJob(GetCurrentProcess(), NULL, &inside) && !inside);
    CHECK_ERR(AssignProcessToJobObject(job, c.hProcess), FALSE, ERROR_NOT_ENOUGH_QUOTA);
    DWORD code = 0;
    CHECK(WaitForSingleObject(c.hProcess, 20000) == WAIT_OBJECT_0);
    CHECK(GetExitCodeProcess(c.hProcess, &code) && code == ERROR_NOT_ENOUGH_QUOTA);
    CHECK_ERR(AssignProcessToJobObject(query_only, a.hProcess), FALSE, ERROR_ACCESS_DENIED);

    /* The process-id list, whole and cut short. */
    struct { JOBOBJECT_BASIC_PROCESS_ID_LIST list; ULONG_PTR more[7]; } ids;
    CHECK(QueryInformationJobObject(job, JobObjectBasicProcessIdList, &ids, sizeof ids, &got));
    CHECK(ids.list.NumberOfAssignedProcesses == 2 && ids.list.NumberOfProcessIdsInList == 2);
    CHECK((ids.list.ProcessIdList[0] == a.dwProcessId && ids.list.ProcessIdList[1] == b.dwProcessId) ||
          (ids.list.ProcessIdList[0] == b.dwProcessId && ids.list.ProcessIdList[1] == a.dwProcessId));
    JOBOBJECT_BASIC_PROCESS_ID_LIST one;
    CHECK_ERR(QueryInformationJobObject(job, JobObjectBasicProcessIdList, &one, sizeof one, NULL), FALSE,
              ERROR_MORE_DATA);
    CHECK(one.NumberOfAssignedProcesses == 2 && one.NumberOfProcessIdsInList == 1);

    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION acct;
    CHECK(QueryInformationJobObject(job, JobObjectBasicAccountingInformation, &acct, sizeof acct, &got));
    CHECK(got == sizeof acct && acct.TotalProcesses == 2 && acct.ActiveProcesses == 2);
    CHECK_ERR(QueryInformationJobObject(job, JobObjectBasicAccountingInformation, &acct, 8, NULL), FALSE,
              ERROR_BAD_LENGTH);
    CHECK_ERR(QueryInformationJobObject(job, (JOBOBJECTINFOCLASS)77, &acct, sizeof acct, NULL), FALSE,
              ERROR_INVALID_PARAMETER);

    /* TerminateJobObject: both end with the code; the job is signaled. */
    CHECK(WaitForSingleObject(job, 0) == WAIT_TIMEOUT);
    CHECK(TerminateJobObject(job, 77));
    CHECK(WaitForSingleObject(a.hProcess, 20000) == WAIT_OBJECT_0);
    CHECK(WaitForSingleObject(b.hProcess, 20000) == WAIT_OBJECT_0);
    CHECK(GetExitCodeProcess(a.hProcess, &code) && code == 77);
    CHECK(WaitForSingleObject(job, 0) == WAIT_OBJECT_0);

    /* Kill on close: a worker assigned, then the last handle closed. */
    PROCESS_INFORMATION d = start("burn", 0);
    CHECK(d.hProcess && AssignProcessToJobObject(job, d.hProcess));
    CloseHandle(query_only);
    CloseHandle(job);
    CHECK(WaitForSingleObject(d.hProcess, 20000) == WAIT_OBJECT_0);
    CHECK_ERR(OpenJobObjectA(JOB_OBJECT_QUERY, FALSE, "Local\\c-jobs"), NULL, ERROR_FILE_NOT_FOUND);

    /* Breakaway needs the job's leave; this process is not in a job. */
    HANDLE mine = CreateJobObjectW(NULL, NULL);
    CHECK(mine != NULL && AssignProcessToJobObject(mine, GetCurrentProcess()));
    CHECK(IsProcessInJob(GetCurrentProcess(), mine, &inside) && inside);
    PROCESS_INFORMATION e = start("sleep", CREATE_BREAKAWAY_FROM_JOB);
    CHECK(e.hProcess == NULL && GetLastError() == ERROR_ACCESS_DENIED);
    PROCESS_INFORMATION f = start("sleep", 0);
    CHECK(f.hProcess && IsProcessInJob(f.hProcess, mine, &inside) && inside);
    CHECK(TerminateProcess(f.hProcess, 3));

    PROCESS_INFORMATION all[] = {a, b, c, d, f};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CloseHandle(all[i].hProcess);
        CloseHandle(all[i].hThread);
    }
    CHECK_DONE();
}
