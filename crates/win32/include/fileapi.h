/* fileapi.h for objmgr: the Windows SDK splits windows.h into headers that
   sources include directly; objmgr's windows.h declares them all. */
#ifndef OBJMGR_FILEAPI_H
#define OBJMGR_FILEAPI_H
#include <windows.h>
#endif
