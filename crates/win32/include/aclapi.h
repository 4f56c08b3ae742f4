/* objmgr: declared in windows.h, as Windows programs that include aclapi.h expect. */
#include "windows.h"
