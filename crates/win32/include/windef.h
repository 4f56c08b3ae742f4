/* windef.h for objmgr: the Windows SDK splits windows.h into headers that
   sources include directly; objmgr's windows.h declares them all. */
#ifndef OBJMGR_WINDEF_H
#define OBJMGR_WINDEF_H
#include <windows.h>
#endif
