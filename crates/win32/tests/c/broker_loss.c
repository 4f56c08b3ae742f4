/* A broker that dies, seen from C: the test kills it while this program
   holds an event, a mapping, a file (argv[1]), a mapping of that file and
   a thread, and the thread waits on the event.
   A new broker takes every handle back: another process finds the mapping
   and the event by name and sets the event, which ends the wait; the old
   handles keep working, and a name still means the same object. */
#include <string.h>
#include "check.h"

static HANDLE event;
static volatile LONG waited;   /* 1 once the waiter's wait returned */
static DWORD wait_result;

static DWORD WINAPI waiter(LPVOID unused) {
    (void)unused;
    wait_result = WaitForSingleObject(event, INFINITE);
    InterlockedExchange(&waited, 1);
    return 7;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    /* Others may read it, not write it. */
    HANDLE file = CreateFileA(argv[1], GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ, NULL,
                              CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    CHECK(file != INVALID_HANDLE_VALUE);
    DWORD n = 0;
    CHECK(WriteFile(file, "first ", 6, &n, NULL) && n == 6);
    event = CreateEventA(NULL, TRUE, FALSE, "Local\\c-lost");
    CHECK(event != NULL);
    HANDLE mapping = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096,
                                        "Local\\c-lost-memory");
    CHECK(mapping != NULL);
    char *view = MapViewOfFile(mapping, FILE_MAP_ALL_ACCESS, 0, 0, 0);
    CHECK(view != NULL);
    strcpy(view, "kept");
    /* A second handle by name shares the first's descriptor, and its
       close (which frees nothing) waits in the close ring. */
    HANDLE second = OpenFileMappingA(FILE_MAP_READ, FALSE, "Local\\c-lost-memory");
    CHECK(second != NULL);
    CHECK(CloseHandle(second));
    /* An unnamed mapping of the file (which it extends to 4096 bytes). */
    HANDLE file_map = CreateFileMappingA(file, NULL, PAGE_READWRITE, 0, 4096, NULL);
    CHECK(file_map != NULL);
    char *file_view = MapViewOfFile(file_map, FILE_MAP_WRITE, 0, 0, 0);
    CHECK(file_view != NULL);
    memcpy(file_view + 100, "mapped", 6);
    CHECK(UnmapViewOfFile(file_view));
    HANDLE thread = CreateThread(NULL, 0, waiter, NULL, 0, NULL);
    CHECK(thread != NULL);
    Sleep(100); /* the waiter is asleep */
    printf("holding\n");
    fflush(stdout);
    /* Meanwhile the broker is killed, and another process sets the event
       it found by name, after writing to the mapping it found by name. */
    (void)getchar();

    for (int i = 0; i < 1000 && !waited; i++) Sleep(10);
    CHECK(waited);
    CHECK(wait_result == WAIT_OBJECT_0);
    CHECK(strcmp(view, "back") == 0);
    /* The old handles work, through the broker or not. */
    CHECK(ResetEvent(event));
    CHECK(WaitForSingleObject(event, 0) == WAIT_TIMEOUT);
    char *again = MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0);
    CHECK(again != NULL && strcmp(again, "back") == 0);
    CHECK(UnmapViewOfFile(again));
    HANDLE by_name_memory = OpenFileMappingA(FILE_MAP_READ, FALSE, "Local\\c-lost-memory");
    CHECK(by_name_memory != NULL);
    CHECK(CloseHandle(by_name_memory));
    /* The file's mapping came back too: a new view is the file's. */
    file_view = MapViewOfFile(file_map, FILE_MAP_WRITE, 0, 0, 0);
    CHECK(file_view != NULL && memcmp(file_view + 100, "mapped", 6) == 0);
    memcpy(file_view + 200, "after", 5);
    CHECK(UnmapViewOfFile(file_view));
    CHECK(CloseHandle(file_map));
    CHECK(WaitForSingleObject(thread, 10000) == WAIT_OBJECT_0);
    DWORD code = 0;
    CHECK(GetExitCodeThread(thread, &code) && code == 7);
    /* The name still means the same object. */
    HANDLE by_name = OpenEventA(EVENT_MODIFY_STATE | SYNCHRONIZE, FALSE, "Local\\c-lost");
    CHECK(by_name != NULL);
    CHECK(SetEvent(by_name));
    CHECK(WaitForSingleObject(event, 0) == WAIT_OBJECT_0);
    CHECK(CloseHandle(by_name));
    /* The file goes on where it was, and its share mode still holds. */
    CHECK(WriteFile(file, "second", 6, &n, NULL) && n == 6);
    CHECK_ERR(CreateFileA(argv[1], GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                          OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL),
              INVALID_HANDLE_VALUE, ERROR_SHARING_VIOLATION);
    CHECK(SetFilePointer(file, 0, NULL, FILE_BEGIN) == 0);
    char text[16] = {0};
    CHECK(ReadFile(file, text, 12, &n, NULL) && n == 12 && memcmp(text, "first second", 12) == 0);
    CHECK(SetFilePointer(file, 200, NULL, FILE_BEGIN) == 200);
    CHECK(ReadFile(file, text, 5, &n, NULL) && n == 5 && memcmp(text, "after", 5) == 0);
    CHECK(CloseHandle(file));
    CHECK(DeleteFileA(argv[1]));
    CHECK(CloseHandle(thread));
    CHECK(CloseHandle(event));
    CHECK(UnmapViewOfFile(view));
    CHECK(CloseHandle(mapping));
    CHECK_DONE();
}
