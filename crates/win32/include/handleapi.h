/* handleapi.h for objmgr: the Windows SDK splits windows.h into headers that
   sources include directly; objmgr's windows.h declares them all. */
#ifndef OBJMGR_HANDLEAPI_H
#define OBJMGR_HANDLEAPI_H
#include <windows.h>
#endif
