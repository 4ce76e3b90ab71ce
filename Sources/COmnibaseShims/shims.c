#define _GNU_SOURCE
#include "omnibase_shims.h"
#include <sys/wait.h>

int omni_wifexited(int status) { return WIFEXITED(status); }
int omni_wexitstatus(int status) { return WEXITSTATUS(status); }
int omni_wifsignaled(int status) { return WIFSIGNALED(status); }
int omni_wtermsig(int status) { return WTERMSIG(status); }
