/* A broker that dies, seen from C: the test kills it while this program
   holds an event and a mapping and a thread waits; then every old handle
   fails with ERROR_INVALID_HANDLE, the wait has ended, the view keeps its
   memory, and names are looked up in a new, empty broker. */
#include <string.h>
#include "check.h"

static HANDLE event;
static volatile LONG waited;   /* 1 once the waiter's wait returned */
static DWORD wait_result, wait_error;

static DWORD WINAPI waiter(LPVOID unused) {
    (void)unused;
    wait_result = WaitForSingleObject(event, INFINITE);
    wait_error = GetLastError();
    InterlockedExchange(&waited, 1);
    return 0;
}

int main(void) {
    event = CreateEventA(NULL, TRUE, FALSE, "Local\\c-lost");
    CHECK(event != NULL);
    HANDLE mapping = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096,
                                        "Local\\c-lost-memory");
    CHECK(mapping != NULL);
    char *view = MapViewOfFile(mapping, FILE_MAP_ALL_ACCESS, 0, 0, 0);
    CHECK(view != NULL);
    strcpy(view, "kept");
    HANDLE thread = CreateThread(NULL, 0, waiter, NULL, 0, NULL);
    CHECK(thread != NULL);
    Sleep(100); /* the waiter is asleep */
    printf("holding\n");
    fflush(stdout);
    (void)getchar(); /* the broker is killed meanwhile */

    /* The wait ended, with no broker running, within 10 s. */
    for (int i = 0; i < 1000 && !waited; i++) Sleep(10);
    CHECK(waited);
    CHECK(wait_result == WAIT_FAILED);
    CHECK(wait_error == ERROR_INVALID_HANDLE);
    /* Every old handle fails at once, also where the broker is not asked. */
    CHECK_ERR(SetEvent(event), FALSE, ERROR_INVALID_HANDLE);
    CHECK_ERR(WaitForSingleObject(event, 0), WAIT_FAILED, ERROR_INVALID_HANDLE);
    CHECK_ERR(MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0), NULL, ERROR_INVALID_HANDLE);
    /* The view keeps its memory. */
    CHECK(strcmp(view, "kept") == 0);
    /* A new broker, which starts empty, answers the names. */
    CHECK_ERR(OpenEventA(SYNCHRONIZE, FALSE, "Local\\c-lost"), NULL, ERROR_FILE_NOT_FOUND);
    CHECK_ERR(OpenFileMappingA(FILE_MAP_READ, FALSE, "Local\\c-lost-memory"), NULL,
              ERROR_FILE_NOT_FOUND);
    HANDLE again = CreateEventA(NULL, TRUE, TRUE, "Local\\c-lost");
    CHECK(again != NULL && GetLastError() != ERROR_ALREADY_EXISTS);
    CHECK(WaitForSingleObject(again, 0) == WAIT_OBJECT_0);
    CHECK(CloseHandle(again));
    CHECK(UnmapViewOfFile(view));
    CHECK_DONE();
}
