/* minwindef.h for objmgr: the Windows SDK splits windows.h into headers that
   sources include directly; objmgr's windows.h declares them all. */
#ifndef OBJMGR_MINWINDEF_H
#define OBJMGR_MINWINDEF_H
#include <windows.h>
#endif
