#include "cpixeld_sockets.h"
