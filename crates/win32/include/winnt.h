/* winnt.h for objmgr: the Windows SDK splits windows.h into headers that
   sources include directly; objmgr's windows.h declares them all. */
#ifndef OBJMGR_WINNT_H
#define OBJMGR_WINNT_H
#include <windows.h>
#endif
