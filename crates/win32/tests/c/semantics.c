/* Corners where Windows' behaviour is specific (each seen in Wine's
   conformance tests): waits on the current process and thread, handle
   tag bits, views with no access, the last page of a section, and the
   per-page state and protection Windows keeps for memory. */
#include <windows.h>
#include <string.h>
#include "check.h"

static MEMORY_BASIC_INFORMATION query(const void *p) {
    MEMORY_BASIC_INFORMATION info;
    memset(&info, 0, sizeof info);
    CHECK(VirtualQuery(p, &info, sizeof info) == sizeof info);
    return info;
}

int main(void) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    DWORD page = si.dwPageSize;

    /* The current process and thread are never signaled while they wait. */
    CHECK(WaitForSingleObject(GetCurrentProcess(), 0) == WAIT_TIMEOUT);
    CHECK(WaitForSingleObject(GetCurrentThread(), 10) == WAIT_TIMEOUT);
    CHECK(WaitForSingleObjectEx(GetCurrentThread(), 10, TRUE) == WAIT_TIMEOUT);
    /* ... but WaitForMultipleObjects refuses them. */
    HANDLE set = CreateEvent(NULL, TRUE, TRUE, NULL);
    HANDLE pair[2] = {GetCurrentThread(), set};
    CHECK_ERR(WaitForMultipleObjects(2, pair, FALSE, 0), WAIT_FAILED, ERROR_INVALID_HANDLE);
    CHECK_ERR(WaitForMultipleObjects(1, pair, FALSE, 0), WAIT_FAILED, ERROR_INVALID_HANDLE);

    /* The two low bits of a handle value are the application's. */
    CHECK(ResetEvent((HANDLE)((ULONG_PTR)set | 3)));
    CHECK(WaitForSingleObject((HANDLE)((ULONG_PTR)set | 1), 0) == WAIT_TIMEOUT);
    CHECK(CloseHandle((HANDLE)((ULONG_PTR)set | 2)));

    /* Views asked with no read, write or copy right have no access. */
    HANDLE mapping = CreateFileMapping(INVALID_HANDLE_VALUE, NULL, PAGE_EXECUTE_READWRITE, 0, 100, NULL);
    CHECK(mapping != NULL);
    void *none = MapViewOfFile(mapping, 0, 0, 0, 0);
    CHECK(none != NULL && query(none).Protect == PAGE_NOACCESS && query(none).AllocationProtect == PAGE_NOACCESS);
    CHECK(UnmapViewOfFile(none));
    none = MapViewOfFile(mapping, SECTION_MAP_EXECUTE, 0, 0, 0);
    CHECK(none != NULL && query(none).Protect == PAGE_NOACCESS);
    CHECK(UnmapViewOfFile(none));
    CHECK(query(MapViewOfFile(mapping, FILE_MAP_READ | FILE_MAP_COPY, 0, 0, 0)).Protect == PAGE_READONLY);
    HANDLE no_rights = NULL;
    CHECK(DuplicateHandle(GetCurrentProcess(), mapping, GetCurrentProcess(), &no_rights, 0, FALSE, 0));
    CHECK_ERR(MapViewOfFile(no_rights, 0, 0, 0, 0), NULL, ERROR_ACCESS_DENIED);
    CHECK(CloseHandle(no_rights));
    CHECK(DuplicateHandle(GetCurrentProcess(), mapping, GetCurrentProcess(), &no_rights, SECTION_QUERY, FALSE, 0));
    CHECK_ERR(MapViewOfFile(no_rights, FILE_MAP_READ, 0, 0, 0), NULL, ERROR_ACCESS_DENIED);
    CHECK(CloseHandle(no_rights));

    /* A 100-byte section maps up to the end of its page; inside-view unmap. */
    char *whole = (char *)MapViewOfFile(mapping, FILE_MAP_WRITE, 0, 0, page);
    CHECK(whole != NULL && query(whole).RegionSize == page);
    if (whole) whole[page - 1] = 1;
    CHECK(UnmapViewOfFile(whole + 100));
    CHECK_ERR(UnmapViewOfFile(whole), FALSE, ERROR_INVALID_ADDRESS);
    CHECK_ERR(MapViewOfFile(mapping, FILE_MAP_WRITE, 0, 0, page + 1), NULL, ERROR_ACCESS_DENIED);

    /* Copy-on-write views read as such until written. */
    char *copy = (char *)MapViewOfFile(mapping, FILE_MAP_COPY, 0, 0, 0);
    CHECK(copy != NULL && query(copy).Protect == PAGE_WRITECOPY && query(copy).AllocationProtect == PAGE_WRITECOPY);
    if (copy) copy[0] = 5;
    CHECK(query(copy).Protect == PAGE_READWRITE && query(copy).AllocationProtect == PAGE_WRITECOPY);
    CHECK(UnmapViewOfFile(copy));

    /* VirtualProtect of a view stays within the view's access; copy-on-write
       is allowed and keeps writes out of the section. */
    char *reader = (char *)MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0);
    char *writer = (char *)MapViewOfFile(mapping, FILE_MAP_WRITE, 0, 0, 0);
    DWORD old = 0;
    CHECK_ERR(VirtualProtect(reader, page, PAGE_READWRITE, &old), FALSE, ERROR_INVALID_PARAMETER);
    CHECK_ERR(VirtualProtect(reader, page, PAGE_EXECUTE_READ, &old), FALSE, ERROR_INVALID_PARAMETER);
    CHECK(VirtualProtect(reader, page, PAGE_WRITECOPY, &old) && old == PAGE_READONLY);
    CHECK(query(reader).Protect == PAGE_WRITECOPY);
    if (reader && writer) {
        /* Until written, a copy-on-write page follows the section... */
        writer[2] = 3;
        CHECK(reader[2] == 3);
        /* ... and once written it is this process's own. */
        reader[1] = 9;
        CHECK(writer[1] == 0 && query(reader).Protect == PAGE_READWRITE);
        writer[1] = 4;
        CHECK(reader[1] == 9);
    }
    CHECK(VirtualProtect(writer, page, PAGE_NOACCESS, &old) && old == PAGE_READWRITE);
    CHECK(query(writer).Protect == PAGE_NOACCESS && query(writer).State == MEM_COMMIT &&
          query(writer).AllocationProtect == PAGE_READWRITE);
    UnmapViewOfFile(reader);
    UnmapViewOfFile(writer);
    CloseHandle(mapping);

    /* SEC_RESERVE: views start reserved; VirtualAlloc commits in them. */
    mapping = CreateFileMapping(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE | SEC_RESERVE, 0, 4 * page, NULL);
    char *reserved = (char *)MapViewOfFile(mapping, FILE_MAP_WRITE, 0, 0, 0);
    CHECK(reserved != NULL && query(reserved).State == MEM_RESERVE && query(reserved).RegionSize == 4 * page);
    CHECK(VirtualAlloc(reserved + page, page, MEM_COMMIT, PAGE_READWRITE) == reserved + page);
    if (reserved) reserved[page] = 7;
    CHECK(query(reserved + page).State == MEM_COMMIT && query(reserved + page).RegionSize == page);
    CHECK_ERR(VirtualAlloc(reserved, page, MEM_COMMIT, PAGE_EXECUTE_READWRITE), NULL, ERROR_INVALID_PARAMETER);
    UnmapViewOfFile(reserved);
    CloseHandle(mapping);

    /* SEC_* flags as Windows validates them. */
    CHECK_ERR(CreateFileMapping(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE | SEC_IMAGE | SEC_COMMIT, 0, page, NULL), NULL,
              ERROR_INVALID_PARAMETER);
    CHECK_ERR(CreateFileMapping(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE | SEC_NOCACHE, 0, page, NULL), NULL,
              ERROR_INVALID_PARAMETER);
    CHECK_ERR(CreateFileMapping(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE | SEC_IMAGE, 0, page, NULL), NULL,
              ERROR_BAD_EXE_FORMAT);
    HANDLE nocache = CreateFileMapping(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE | SEC_COMMIT | SEC_NOCACHE, 0, page, NULL);
    CHECK(nocache != NULL);
    CloseHandle(nocache);

    /* Private memory: committed PAGE_NOACCESS is committed; reserved pages
       refuse VirtualProtect; WRITECOPY is for views only. */
    char *na = (char *)VirtualAlloc(NULL, page, MEM_COMMIT, PAGE_NOACCESS);
    CHECK(na != NULL && query(na).State == MEM_COMMIT && query(na).Protect == PAGE_NOACCESS);
    CHECK(VirtualFree(na, 0, MEM_RELEASE));
    CHECK_ERR(VirtualAlloc(NULL, page, MEM_COMMIT, PAGE_WRITECOPY), NULL, ERROR_INVALID_PARAMETER);
    CHECK_ERR(VirtualAlloc(NULL, page, MEM_COMMIT | AT_ROUND_TO_PAGE, PAGE_READWRITE), NULL, ERROR_INVALID_PARAMETER);
    char *r = (char *)VirtualAlloc(NULL, 16 * page, MEM_RESERVE, PAGE_READWRITE);
    CHECK(r != NULL && query(r).State == MEM_RESERVE && query(r).Protect == 0);
    CHECK_ERR(VirtualProtect(r, page, PAGE_READONLY, &old), FALSE, ERROR_INVALID_ADDRESS);
    CHECK(VirtualAlloc(r, page, MEM_COMMIT, PAGE_READWRITE) == r);
    CHECK_ERR(VirtualProtect(r, 2 * page, PAGE_READONLY, &old), FALSE, ERROR_INVALID_ADDRESS);
    CHECK_ERR(VirtualProtect(r, page, PAGE_WRITECOPY, &old), FALSE, ERROR_INVALID_PARAMETER);
    CHECK(VirtualProtect(r, page, PAGE_EXECUTE, &old) && old == PAGE_READWRITE);
    CHECK(query(r).Protect == PAGE_EXECUTE && query(r).AllocationProtect == PAGE_READWRITE);
    CHECK(VirtualProtect(r, page, PAGE_READWRITE, &old) && old == PAGE_EXECUTE);
    memset(r, 0x55, 16);
    CHECK(VirtualAlloc(r, page, MEM_RESET, PAGE_NOACCESS) == r);
    CHECK(query(r).State == MEM_COMMIT && query(r).Protect == PAGE_READWRITE);
    CHECK(VirtualAlloc(r, page, MEM_RESET_UNDO, PAGE_NOACCESS) == r && r[0] == 0x55);
    CHECK_ERR(VirtualAlloc(r + 15 * page, 2 * page, MEM_RESET, PAGE_NOACCESS), NULL, ERROR_INVALID_ADDRESS);
    CHECK(query(r + page).State == MEM_RESERVE && query(r + page).RegionSize == 15 * page);
    CHECK(VirtualFree(r, 0, MEM_RELEASE));

    /* Cache modifiers belong to the allocation. */
    char *nc = (char *)VirtualAlloc(NULL, 2 * page, MEM_COMMIT, PAGE_READWRITE | PAGE_NOCACHE);
    CHECK(nc != NULL && query(nc).Protect == (PAGE_READWRITE | PAGE_NOCACHE));
    CHECK(VirtualProtect(nc, page, PAGE_READONLY, &old) && old == (PAGE_READWRITE | PAGE_NOCACHE));
    CHECK(query(nc).Protect == (PAGE_READONLY | PAGE_NOCACHE) && query(nc).RegionSize == page);
    CHECK(VirtualFree(nc, 0, MEM_RELEASE));
    char *plain = (char *)VirtualAlloc(NULL, page, MEM_COMMIT, PAGE_READWRITE);
    CHECK(VirtualProtect(plain, page, PAGE_READONLY | PAGE_NOCACHE, &old) && query(plain).Protect == PAGE_READONLY);
    CHECK(VirtualFree(plain, 0, MEM_RELEASE));

    CHECK_DONE();
}
