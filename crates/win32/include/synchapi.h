/* synchapi.h for objmgr: the Windows SDK splits windows.h into headers that
   sources include directly; objmgr's windows.h declares them all. */
#ifndef OBJMGR_SYNCHAPI_H
#define OBJMGR_SYNCHAPI_H
#include <windows.h>
#endif
