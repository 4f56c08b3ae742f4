/* memoryapi.h for objmgr: the Windows SDK splits windows.h into headers that
   sources include directly; objmgr's windows.h declares them all. */
#ifndef OBJMGR_MEMORYAPI_H
#define OBJMGR_MEMORYAPI_H
#include <windows.h>
#endif
