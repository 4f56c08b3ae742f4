/* objmgr: declared in windows.h, as Windows programs that include securitybaseapi.h expect. */
#include "windows.h"
