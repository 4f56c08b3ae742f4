/* winbase.h for objmgr: the Windows SDK splits windows.h into headers that
   sources include directly; objmgr's windows.h declares them all. */
#ifndef OBJMGR_WINBASE_H
#define OBJMGR_WINBASE_H
#include <windows.h>
#endif
