/* The C side of a Rust/C pair: opens the section and event a Rust process
   created, reads its message, answers, and signals the event. */
#include <windows.h>
#include <string.h>
#include "check.h"

int main(void) {
    HANDLE section = OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, "Local\\rust-and-c");
    CHECK(section != NULL);
    HANDLE event = OpenEventA(EVENT_MODIFY_STATE | SYNCHRONIZE, FALSE, "Local\\rust-and-c-ready");
    CHECK(event != NULL);
    if (section == NULL || event == NULL) CHECK_DONE();
    char *view = MapViewOfFile(section, FILE_MAP_ALL_ACCESS, 0, 0, 0);
    CHECK(view != NULL && strcmp(view, "from-rust") == 0);
    strcpy(view + 100, "from-c");
    CHECK(SetEvent(event));
    UnmapViewOfFile(view);
    CloseHandle(event);
    CloseHandle(section);
    CHECK_DONE();
}
