/* objmgr: declared in windows.h, as Windows programs that include sddl.h expect. */
#include "windows.h"
